"""SQuAD v1.1 exact match and F1, as an `evaluate` module shipped in the repository (evaluate.load("metrics/squad")
never fetches code). Same inputs and results as the official evaluate-v1.1.py script and the Hub's `squad`."""

import re
import string
from collections import Counter

import datasets
import evaluate

_DESCRIPTION = ("Exact match and token-overlap F1 after the official normalization (lower-case, no punctuation, "
                "no a/an/the, single spaces), each the best over the gold answers, averaged over questions (0-100).")
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str}.
    references: list of {"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}.
Returns:
    exact_match (float), f1 (float), both in [0, 100].
Example:
    >>> metric = evaluate.load("metrics/squad")
    >>> metric.compute(predictions=[{"id": "1", "prediction_text": "the Denver Broncos"}],
    ...                references=[{"id": "1", "answers": {"text": ["Denver Broncos"], "answer_start": [0]}}])
    {'exact_match': 100.0, 'f1': 100.0}
"""
PUNCTUATION = set(string.punctuation)


def normalize_answer(text):
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match_score(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction, gold):
    prediction_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    overlap = sum((Counter(prediction_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(prediction_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def question_scores(prediction, golds):
    """(exact match, F1) of one prediction: the best over its gold answers, each in [0, 1]."""
    return max(exact_match_score(prediction, g) for g in golds), max(f1_score(prediction, g) for g in golds)


def squad_scores(predictions, references):
    """{'exact_match', 'f1'} in [0, 100]; predictions {id: text}, references {id: [gold texts]}."""
    missing = set(references) - set(predictions)
    if missing:
        raise ValueError(f"{len(missing)} questions have no prediction, e.g. {sorted(missing)[0]}")
    scores = [question_scores(predictions[qid], golds) for qid, golds in references.items()]
    return {"exact_match": 100.0 * sum(s[0] for s in scores) / len(scores),
            "f1": 100.0 * sum(s[1] for s in scores) / len(scores)}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Squad(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Rajpurkar et al., SQuAD: 100,000+ Questions for Machine Comprehension of Text (2016)",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
                "references": {"id": datasets.Value("string"), "answers": datasets.Sequence(
                    {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")})},
            }),
        )

    def _compute(self, predictions, references):
        return squad_scores({p["id"]: p["prediction_text"] for p in predictions},
                            {r["id"]: r["answers"]["text"] for r in references})
