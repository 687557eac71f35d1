"""SQuAD v2.0 metrics, as an `evaluate` module shipped in the repository (evaluate.load("metrics/squad_v2") never
fetches code). Same inputs and results as the official evaluate-v2.0.py script and the Hub's `squad_v2`: exact
and F1 overall, on answerable (HasAns_*) and unanswerable (NoAns_*) questions, and the best values reachable by
thresholding the no-answer probability (best_exact/best_f1 and their thresholds)."""

import re
import string
from collections import Counter

import datasets
import evaluate

_DESCRIPTION = ("SQuAD v2.0: exact match and token-overlap F1 (0-100) where an unanswerable question is right only "
                "when the prediction is empty, plus the best scores over no-answer probability thresholds.")
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str ("" = no answer), "no_answer_probability": float}.
    references: list of {"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}; an empty
        text list marks an unanswerable question.
    no_answer_threshold (float, default 1.0): a prediction whose no_answer_probability is above it counts as "".
Returns:
    exact, f1, total, HasAns_exact, HasAns_f1, HasAns_total, NoAns_exact, NoAns_f1, NoAns_total (the HasAns/NoAns
    keys only where such questions exist), best_exact, best_exact_thresh, best_f1, best_f1_thresh.
Example:
    >>> metric = evaluate.load("metrics/squad_v2")
    >>> metric.compute(predictions=[{"id": "1", "prediction_text": "", "no_answer_probability": 0.9}],
    ...                references=[{"id": "1", "answers": {"text": [], "answer_start": []}}])["exact"]
    100.0
"""
PUNCTUATION = set(string.punctuation)


def normalize_answer(text):
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_score(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction, gold):
    prediction_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not prediction_tokens or not gold_tokens:  # no answer: right only if both are empty
        return float(prediction_tokens == gold_tokens)
    overlap = sum((Counter(prediction_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(prediction_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def raw_scores(predictions, golds):
    """Per question (exact, F1) in [0, 1]; golds that normalize to nothing are dropped, none left = no answer."""
    exact, f1 = {}, {}
    for qid, gold_texts in golds.items():
        gold_texts = [g for g in gold_texts if normalize_answer(g)] or [""]
        exact[qid] = max(exact_score(predictions[qid], g) for g in gold_texts)
        f1[qid] = max(f1_score(predictions[qid], g) for g in gold_texts)
    return exact, f1


def apply_threshold(scores, no_answer_probability, has_answer, threshold):
    """Predictions whose no-answer probability is above the threshold become "": right only if unanswerable."""
    return {qid: float(not has_answer[qid]) if no_answer_probability[qid] > threshold else score
            for qid, score in scores.items()}


def best_threshold(predictions, scores, no_answer_probability, has_answer):
    """The score (0-100) and threshold reached by answering "" for every question whose no-answer probability is
    above the threshold, scanning thresholds from "always no answer" upwards (the official algorithm)."""
    current = best = sum(not has for has in has_answer.values())
    threshold = 0.0
    for qid in sorted(no_answer_probability, key=lambda q: no_answer_probability[q]):
        if has_answer[qid]:
            current += scores[qid]
        else:
            current += -1 if predictions[qid] else 0
        if current > best:
            best, threshold = current, no_answer_probability[qid]
    return 100.0 * best / len(scores), threshold


def squad_v2_scores(predictions, golds, no_answer_probability, no_answer_threshold=1.0):
    """predictions {id: text}, golds {id: [gold texts]}, no_answer_probability {id: float} -> the metrics dict."""
    missing = set(golds) - set(predictions)
    if missing:
        raise ValueError(f"{len(missing)} questions have no prediction, e.g. {sorted(missing)[0]}")
    # As the official script: a question with any gold answer is answerable, even if every gold text normalizes to
    # nothing (["."]); raw_scores then compares the prediction with "".
    has_answer = {qid: bool(texts) for qid, texts in golds.items()}
    exact_raw, f1_raw = raw_scores(predictions, golds)
    exact = apply_threshold(exact_raw, no_answer_probability, has_answer, no_answer_threshold)
    f1 = apply_threshold(f1_raw, no_answer_probability, has_answer, no_answer_threshold)

    def summary(qids, prefix=""):
        return {f"{prefix}exact": 100.0 * sum(exact[q] for q in qids) / len(qids),
                f"{prefix}f1": 100.0 * sum(f1[q] for q in qids) / len(qids), f"{prefix}total": len(qids)}

    results = summary(list(golds))
    for prefix, wanted in (("HasAns_", True), ("NoAns_", False)):
        qids = [q for q in golds if has_answer[q] == wanted]
        if qids:
            results.update(summary(qids, prefix))
    results["best_exact"], results["best_exact_thresh"] = best_threshold(
        predictions, exact_raw, no_answer_probability, has_answer)
    results["best_f1"], results["best_f1_thresh"] = best_threshold(
        predictions, f1_raw, no_answer_probability, has_answer)
    return results


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SquadV2(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Rajpurkar et al., Know What You Don't Know: Unanswerable Questions for SQuAD (2018)",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string"),
                                "no_answer_probability": datasets.Value("float32")},
                "references": {"id": datasets.Value("string"), "answers": datasets.Sequence(
                    {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")})},
            }),
        )

    def _compute(self, predictions, references, no_answer_threshold=1.0):
        return squad_v2_scores({p["id"]: p["prediction_text"] for p in predictions},
                               {r["id"]: r["answers"]["text"] for r in references},
                               {p["id"]: p["no_answer_probability"] for p in predictions}, no_answer_threshold)
