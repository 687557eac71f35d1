"""Accuracy and binary F1 (positive class = 1) for sentence classification, as an `evaluate` module shipped in the
repository so that evaluation never fetches code from the Hub: evaluate.load("metrics/accuracy_f1")."""

import datasets
import evaluate

_DESCRIPTION = "Accuracy = correct / total. F1 = harmonic mean of precision and recall of the positive class (1)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): gold labels.
Returns:
    accuracy (float), f1 (float), both in [0, 1].
Example:
    >>> metric = evaluate.load("metrics/accuracy_f1")
    >>> metric.compute(predictions=[1, 0, 1], references=[1, 1, 1])
    {'accuracy': 0.6666666666666666, 'f1': 0.8}
"""


def accuracy(predictions, references):
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


def binary_f1(predictions, references, positive=1):
    true_pos = sum(p == positive and r == positive for p, r in zip(predictions, references))
    predicted_pos = sum(p == positive for p in predictions)
    actual_pos = sum(r == positive for r in references)
    if true_pos == 0:
        return 0.0
    precision, recall = true_pos / predicted_pos, true_pos / actual_pos
    return 2 * precision * recall / (precision + recall)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AccuracyF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        return {"accuracy": accuracy(predictions, references), "f1": binary_f1(predictions, references)}
