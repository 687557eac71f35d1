"""Metrics computed along the last axis of per-example arrays: for 1-D arrays one value, for (resamples, examples)
arrays one value per resample in a single numpy pass (finetune.stats resamples with them). Classification metrics
go through confusion matrices; each agrees with scikit-learn's definition, including its 0 for an undefined F1 or
Matthews correlation."""

import math

import numpy as np


def mean_metric(names):
    """Each array's mean, under its name: SQuAD's exact match and F1 from per-question scores (0-100)."""
    return lambda *scores: {name: np.mean(x, axis=-1) for name, x in zip(names, scores)}


def confusion_matrices(labels, predictions, num_classes):
    """Counts [..., gold, predicted]: one matrix for 1-D arrays, one per row for (resamples, examples) ones."""
    codes = np.broadcast_arrays(labels, predictions)
    codes = (codes[0] * num_classes + codes[1]).astype(np.int64)
    rows = codes.reshape(-1, codes.shape[-1]) + num_classes**2 * np.arange(math.prod(codes.shape[:-1]))[:, None]
    counts = np.bincount(rows.ravel(), minlength=rows.shape[0] * num_classes**2)
    return counts.reshape(*codes.shape[:-1], num_classes, num_classes)


def divide(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's value for an undefined F1 or MCC)."""
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast_shapes(np.shape(numerator),
                                                                           np.shape(denominator))),
                     where=denominator != 0)


def accuracy(confusion):
    return np.trace(confusion, axis1=-2, axis2=-1) / confusion.sum(axis=(-2, -1))


def class_f1(confusion):
    """(..., classes) F1 of each class, and whether the class occurs (as gold or prediction)."""
    occurrences = confusion.sum(axis=-1) + confusion.sum(axis=-2)
    return divide(2 * np.diagonal(confusion, axis1=-2, axis2=-1), occurrences), occurrences > 0


def binary_f1(confusion):  # F1 of class 1, the positive one
    return class_f1(confusion)[0][..., 1]


def macro_f1(confusion):  # the classes that occur, as scikit-learn averages them
    f1, present = class_f1(confusion)
    return divide((f1 * present).sum(axis=-1), present.sum(axis=-1))


def matthews(confusion):
    """Matthews correlation, multi-class (Gorodkin's R_K, as scikit-learn computes it)."""
    gold, predicted = confusion.sum(axis=-1).astype(float), confusion.sum(axis=-2).astype(float)
    right, total = np.trace(confusion, axis1=-2, axis2=-1), confusion.sum(axis=(-2, -1)).astype(float)
    covariance = right * total - (gold * predicted).sum(axis=-1)
    spread = (total**2 - (predicted**2).sum(axis=-1)) * (total**2 - (gold**2).sum(axis=-1))
    return divide(covariance, np.sqrt(spread))


def classification_metric(names=("accuracy", "f1"), num_classes=2, f1_average="binary"):
    """A vectorised metric_fn(labels, predictions) of the named metrics (accuracy, f1, matthews_correlation);
    f1_average "binary" (class 1) or "macro"."""
    scores = {"accuracy": accuracy, "f1": {"binary": binary_f1, "macro": macro_f1}[f1_average],
              "matthews_correlation": matthews}

    def metric(labels, predictions):
        confusion = confusion_matrices(labels, predictions, num_classes)
        return {name: scores[name](confusion) for name in names}
    return metric


def average_ranks(values):
    """1-based ranks along the last axis, tied values sharing their average rank (what Spearman's rho correlates)."""
    codes = np.unique(values, return_inverse=True)[1].reshape(np.shape(values))
    rows = codes.reshape(-1, codes.shape[-1])
    offsets = (codes.max() + 1) * np.arange(rows.shape[0])[:, None]
    ordered = np.sort(rows + offsets, axis=None)
    below, up_to = (np.searchsorted(ordered, rows + offsets, side) for side in ("left", "right"))
    return ((below + up_to + 1) / 2 - codes.shape[-1] * np.arange(rows.shape[0])[:, None]).reshape(codes.shape)


def pearson(x, y):
    x, y = (np.asarray(v, float) - np.mean(v, axis=-1, keepdims=True) for v in (x, y))
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant resample has no correlation: NaN
        return (x * y).sum(axis=-1) / np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))


def regression_metric(names=("pearson", "spearmanr")):
    """A vectorised metric_fn(labels, predictions) of Pearson's r and Spearman's rho (GLUE's names)."""
    scores = {"pearson": pearson, "spearmanr": lambda x, y: pearson(average_ranks(x), average_ranks(y))}
    return lambda labels, predictions: {name: scores[name](labels, predictions) for name in names}
