import evaluate
import pytest
from conftest import REPO_DIR


@pytest.fixture(scope="module")
def squad():
    return evaluate.load(str(REPO_DIR / "metrics/squad"))


@pytest.fixture(scope="module")
def squad_v2():
    return evaluate.load(str(REPO_DIR / "metrics/squad_v2"))


def v1(metric, pairs):
    """pairs: [(prediction, [gold, ...])]"""
    return metric.compute(
        predictions=[{"id": str(i), "prediction_text": p} for i, (p, _) in enumerate(pairs)],
        references=[{"id": str(i), "answers": {"text": g, "answer_start": [0] * len(g)}}
                    for i, (_, g) in enumerate(pairs)])


def test_official_normalization_makes_these_exact_matches(squad):
    # lower-case, punctuation dropped, a/an/the dropped, whitespace collapsed
    pairs = [("The Denver Broncos!", ["denver broncos"]), ("an  apple,  a day", ["Apple day"]),
             ("Saint-Denis", ["SaintDenis"])]
    assert v1(squad, pairs) == {"exact_match": 100.0, "f1": 100.0}


def test_token_overlap_f1_by_hand(squad):
    # "blue red green" vs "red yellow": 1 shared token, precision 1/3, recall 1/2 -> F1 = 0.4
    assert v1(squad, [("blue red green", ["red yellow"])]) == pytest.approx({"exact_match": 0.0, "f1": 40.0})
    # best over gold answers: 1.0 against the second gold; mean over questions (100 + 40) / 2 = 70, EM 50
    pairs = [("the cat", ["a dog", "cat"]), ("blue red green", ["red yellow"])]
    assert v1(squad, pairs) == pytest.approx({"exact_match": 50.0, "f1": 70.0})
    # repeated tokens count as often as they appear in both: "a b b" vs "b b c": 2 shared, P = R = 2/3
    assert v1(squad, [("x b b", ["b b c"])])["f1"] == pytest.approx(100 * 2 / 3)
    assert v1(squad, [("nothing shared", ["red"])]) == {"exact_match": 0.0, "f1": 0.0}


def v2(metric, rows):
    """rows: [(prediction, [gold, ...], no_answer_probability)]"""
    return metric.compute(
        predictions=[{"id": str(i), "prediction_text": p, "no_answer_probability": na}
                     for i, (p, _, na) in enumerate(rows)],
        references=[{"id": str(i), "answers": {"text": g, "answer_start": [0] * len(g)}}
                    for i, (_, g, _) in enumerate(rows)])


def test_v2_scores_and_best_threshold_by_hand(squad_v2):
    rows = [("red", ["red"], 0.1),     # answerable, right
            ("green", ["blue"], 0.6),  # answerable, wrong
            ("", [], 0.7),             # unanswerable, right (empty prediction)
            ("cat", [], 0.4)]          # unanswerable, wrong
    scores = v2(squad_v2, rows)
    assert scores["exact"] == scores["f1"] == 50.0 and scores["total"] == 4
    assert scores["HasAns_exact"] == 50.0 and scores["HasAns_total"] == 2
    assert scores["NoAns_exact"] == 50.0 and scores["NoAns_total"] == 2
    # Threshold scan from "always no answer" (2 right): answering q0 (p 0.1) -> 3 right, best; answering q3 (0.4)
    # -> 2; q1 (0.6) -> 2; q2 (0.7, empty anyway) -> 2. Best: 3 / 4 at threshold 0.1.
    assert scores["best_exact"] == 75.0 and scores["best_exact_thresh"] == pytest.approx(0.1)
    assert scores["best_f1"] == 75.0 and scores["best_f1_thresh"] == pytest.approx(0.1)


def test_v2_partial_f1_and_threshold_above_one_half(squad_v2):
    # F1 of "red car" vs "red" = 2 * (1/2 * 1) / 1.5 = 2/3; the unanswerable question is predicted empty.
    scores = v2(squad_v2, [("red car", ["red"], 0.2), ("", [], 0.9)])
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 1) / 2) and scores["exact"] == 50.0
    assert scores["HasAns_f1"] == pytest.approx(100 * 2 / 3) and scores["NoAns_f1"] == 100.0
    # all questions answerable: no NoAns_* keys
    assert "NoAns_total" not in v2(squad_v2, [("red", ["red"], 0.0)])


def test_no_answer_probability_above_the_threshold_counts_as_empty(squad_v2):
    rows = [("red", [], 0.9)]  # a span for an unanswerable question, but confident there is none
    assert squad_v2.compute(predictions=[{"id": "0", "prediction_text": "red", "no_answer_probability": 0.9}],
                            references=[{"id": "0", "answers": {"text": [], "answer_start": []}}],
                            no_answer_threshold=0.5)["exact"] == 100.0
    assert v2(squad_v2, rows)["exact"] == 0.0  # default threshold 1.0: the text counts


def test_v2_a_question_whose_gold_normalizes_to_nothing_is_still_answerable(squad_v2):
    """The official script counts a question as answerable when it has gold answers, whatever they normalize to:
    ["."] is HasAns, scored against "" (an empty prediction matches it)."""
    scores = v2(squad_v2, [("", ["."], 0.2), ("red", ["red"], 0.9)])
    assert scores["HasAns_total"] == 2 and "NoAns_total" not in scores
    assert scores["exact"] == 100.0
