"""Text classification and regression metrics as small pure functions over numpy arrays, as GLUE defines them:
accuracy, F1 (of class 1 where there are two classes, as GLUE's MRPC and QQP report it; the unweighted mean over the
classes otherwise), Matthews correlation (CoLA; Gorodkin's form for any number of classes), Pearson and Spearman
correlation (STS-B)."""

import numpy as np


def confusion_matrix(predictions, references, num_labels):
    """counts[gold, predicted]."""
    counts = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(counts, (np.asarray(references), np.asarray(predictions)), 1)
    return counts


def per_class_scores(counts):
    """(precision, recall, f1, support) arrays, one entry per class; 0 where a class was never predicted or seen."""
    true_positives = np.diag(counts).astype(float)
    predicted, support = counts.sum(0), counts.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, 0.0)
        recall = np.where(support > 0, true_positives / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1, support


def matthews_correlation(counts):
    """Matthews correlation of a confusion matrix; 0 where it is undefined (a constant prediction or gold)."""
    counts = counts.astype(float)
    total, correct = counts.sum(), np.trace(counts)
    predicted, gold = counts.sum(0), counts.sum(1)
    denominator = np.sqrt((total**2 - predicted @ predicted) * (total**2 - gold @ gold))
    return float((correct * total - predicted @ gold) / denominator) if denominator > 0 else 0.0


def classification_scores(predictions, references, num_labels):
    """accuracy, f1 and matthews_correlation (floats in [0, 1], MCC in [-1, 1])."""
    counts = confusion_matrix(predictions, references, num_labels)
    _, _, f1, _ = per_class_scores(counts)
    return {"accuracy": float(np.trace(counts) / max(counts.sum(), 1)),
            "f1": float(f1[1] if num_labels == 2 else f1.mean()),
            "matthews_correlation": matthews_correlation(counts)}


def per_class_report(predictions, references, label_names):
    """{label name: {precision, recall, f1, support}} for eval_results.json."""
    precision, recall, f1, support = per_class_scores(confusion_matrix(predictions, references, len(label_names)))
    return {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, precision, recall, f1, support)}


def ranks(values):
    """Ranks from 1, ties sharing the mean of their ranks (as Spearman's correlation needs)."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranked = np.empty(len(values))
    ranked[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranked


def pearson(x, y):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator > 0 else 0.0


def regression_scores(predictions, references):
    """pearson, spearmanr (GLUE's names) and mse."""
    predictions, references = np.asarray(predictions, dtype=float), np.asarray(references, dtype=float)
    return {"pearson": pearson(predictions, references),
            "spearmanr": pearson(ranks(predictions), ranks(references)),
            "mse": float(np.mean((predictions - references) ** 2))}
