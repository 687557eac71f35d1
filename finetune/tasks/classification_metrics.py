"""Text classification's metrics, as GLUE defines them, from finetune.metric_arrays (the functions the bootstrap
intervals resample, so that a metric and its interval are one computation): accuracy, F1 (of class 1 where there
are two classes, as GLUE reports MRPC and QQP; the mean over the classes that occur otherwise), Matthews correlation
(CoLA), Pearson and Spearman correlation (STS-B), and each class's precision, recall and F1."""

import numpy as np

from finetune.metric_arrays import classification_metric, confusion_matrices, divide, regression_metric

CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews_correlation")
REGRESSION_METRICS = ("pearson", "spearmanr")


def f1_average(num_labels):
    return "binary" if num_labels == 2 else "macro"


def classification_scores(predictions, references, num_labels):
    """accuracy, f1 and matthews_correlation (floats in [0, 1], MCC in [-1, 1])."""
    metric = classification_metric(CLASSIFICATION_METRICS, num_labels, f1_average(num_labels))
    return {name: float(value) for name, value in metric(np.asarray(references), np.asarray(predictions)).items()}


def per_class_report(predictions, references, label_names):
    """{label name: {precision, recall, f1, support}} for eval_results.json; 0 where a class was never predicted or
    never seen."""
    counts = confusion_matrices(np.asarray(references), np.asarray(predictions), len(label_names))
    right, support, predicted = np.diag(counts), counts.sum(1), counts.sum(0)
    precision, recall = divide(right, predicted), divide(right, support)
    f1 = divide(2 * precision * recall, precision + recall)
    return {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, precision, recall, f1, support)}


def regression_scores(predictions, references):
    """pearson, spearmanr (GLUE's names) and mse."""
    predictions, references = np.asarray(predictions, dtype=float), np.asarray(references, dtype=float)
    scores = regression_metric(REGRESSION_METRICS)(references, predictions)
    return {**{name: float(np.nan_to_num(value)) for name, value in scores.items()},
            "mse": float(np.mean((predictions - references) ** 2))}
