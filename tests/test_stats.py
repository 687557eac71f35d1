import math

import numpy as np
import pytest

from finetune import metric_arrays, stats


def noisy_predictions(n, right, seed=1, classes=2):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    wrong = (labels + rng.integers(1, classes, n)) % classes
    return labels, np.where(rng.random(n) < right, labels, wrong)


# ---- Metrics against their textbook definitions


def loop_confusion(labels, predictions, k):
    counts = np.zeros((k, k), int)
    for gold, predicted in zip(labels, predictions):
        counts[gold, predicted] += 1
    return counts


def test_classification_metrics_match_their_definitions():
    labels, predictions = noisy_predictions(500, 0.7, classes=3)
    confusion = loop_confusion(labels, predictions, 3)
    assert (metric_arrays.confusion_matrices(labels, predictions, 3) == confusion).all()
    scores = metric_arrays.classification_metric(("accuracy", "f1", "matthews_correlation"), 3, "macro")(
        labels, predictions)
    assert scores["accuracy"] == pytest.approx(np.mean(labels == predictions))
    per_class = [2 * confusion[c, c] / (confusion[c].sum() + confusion[:, c].sum()) for c in range(3)]
    assert scores["f1"] == pytest.approx(np.mean(per_class))
    labels, predictions = noisy_predictions(500, 0.8)
    (tn, fp), (fn, tp) = loop_confusion(labels, predictions, 2)
    binary = metric_arrays.classification_metric(("f1", "matthews_correlation"), 2)(labels, predictions)
    assert binary["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert binary["matthews_correlation"] == pytest.approx(mcc)


def test_undefined_scores_are_zero_and_absent_classes_left_out_of_the_macro_average():
    scores = metric_arrays.classification_metric(("f1", "matthews_correlation"), 2)(np.zeros(4, int), np.zeros(4, int))
    assert scores == {"f1": 0.0, "matthews_correlation": 0.0}
    macro = metric_arrays.classification_metric(("f1",), 5, "macro")(np.array([0, 1, 1]), np.array([0, 1, 0]))
    assert macro["f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)  # classes 2-4 occur nowhere


def test_rows_are_scored_one_by_one():
    labels, predictions = noisy_predictions(50, 0.6, classes=3)
    rows = np.stack([predictions, labels, np.roll(predictions, 1)])
    metric = metric_arrays.classification_metric(("accuracy", "f1", "matthews_correlation"), 3, "macro")
    together = metric(labels, rows)
    for i, row in enumerate(rows):
        for name, value in metric(labels, row).items():
            assert together[name][i] == pytest.approx(value)


def test_spearman_ranks_ties_by_their_average_and_pearson_is_numpys():
    assert metric_arrays.average_ranks(np.array([10, 20, 20, 5])).tolist() == [2, 3.5, 3.5, 1]
    rows = metric_arrays.average_ranks(np.array([[3, 1, 2], [1, 1, 1]]))
    assert rows.tolist() == [[3, 1, 2], [2, 2, 2]]
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = np.round(x + rng.normal(size=200))  # many ties
    scores = metric_arrays.regression_metric()(x, y)
    assert scores["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    ranks = [metric_arrays.average_ranks(v) for v in (x, y)]
    assert scores["spearmanr"] == pytest.approx(np.corrcoef(*ranks)[0, 1])


# ---- Bootstrap intervals


def test_accuracy_interval_brackets_it_with_the_binomial_width():
    labels, predictions = noisy_predictions(872, 0.9)
    accuracy = np.mean(labels == predictions)
    low, high = stats.classification_intervals(labels, predictions)["accuracy"]
    binomial = 1.96 * math.sqrt(accuracy * (1 - accuracy) / 872)
    assert low < accuracy < high
    assert high - low == pytest.approx(2 * binomial, rel=0.15)


def test_intervals_are_reproducible_and_the_same_through_a_plain_metric_function():
    labels, predictions = noisy_predictions(300, 0.8)
    vectorised = stats.classification_intervals(labels, predictions, names=("accuracy",))
    plain = stats.bootstrap_intervals(lambda y, p: {"accuracy": np.mean(y == p)}, (labels, predictions))
    assert plain == vectorised == stats.classification_intervals(labels, predictions, names=("accuracy",))
    assert stats.classification_intervals(labels, predictions, names=("accuracy",), seed=1) != vectorised


def test_squad_score_intervals_on_their_own_scale():
    rng = np.random.default_rng(3)
    exact = 100.0 * (rng.random(10570) < 0.8)
    f1 = np.maximum(exact, 100 * rng.random(10570))
    intervals = stats.score_intervals({"exact_match": exact, "f1": f1})
    for name, scores in (("exact_match", exact), ("f1", f1)):
        low, high = intervals[name]
        assert low < scores.mean() < high and high - low == pytest.approx(
            2 * 1.96 * scores.std() / math.sqrt(len(scores)), rel=0.15)
    assert stats.interval_metrics(intervals)["eval_f1_ci_high"] == intervals["f1"][1]


def test_arrays_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="one length"):
        stats.classification_intervals(np.zeros(3, int), np.zeros(4, int))


# ---- Comparing two runs


@pytest.mark.parametrize("only_a, only_b, p_value", [(0, 0, 1.0), (0, 5, 2 / 32), (9, 1, 2 * 11 / 1024),
                                                     (3, 3, 1.0)])
def test_mcnemar_is_the_exact_two_sided_binomial_tail(only_a, only_b, p_value):
    right_a = np.array([True] * only_a + [False] * only_b + [True] * 7)
    right_b = np.array([False] * only_a + [True] * only_b + [True] * 7)
    assert stats.mcnemar_exact(right_a, right_b) == pytest.approx(p_value)


def test_mcnemar_stays_exact_for_large_sets():
    right_a = np.arange(10000) < 6000
    right_b = np.arange(10000) >= 4000  # 4,000 discordant, split evenly
    assert stats.mcnemar_exact(right_a, right_b) == 1.0
    assert stats.mcnemar_exact(right_a, np.zeros(10000, bool)) < 1e-300


def test_a_run_compared_with_itself_differs_by_nothing():
    labels, predictions = noisy_predictions(872, 0.9)
    comparison = stats.compare_classification(labels, predictions, predictions, names=("accuracy", "f1"))
    for result in comparison.values():
        assert result["difference"] == result["ci_low"] == result["ci_high"] == 0 and result["p_value"] == 1
    scores = {"exact_match": np.array([0.0, 100, 100]), "f1": np.array([50.0, 100, 80])}
    for name, result in stats.compare_scores(scores, scores).items():
        assert result == {"a": scores[name].mean(), "b": scores[name].mean(), "difference": 0.0, "ci_low": 0.0,
                          "ci_high": 0.0, "p_value": 1.0, "test": "paired permutation test"}
        assert "not larger than this evaluation set's noise" in stats.verdict(name, result)


def test_a_clearly_better_run_is_beyond_the_noise_and_a_coin_flip_is_not():
    labels, worse = noisy_predictions(872, 0.80, seed=1)
    better = np.where(np.random.default_rng(2).random(872) < 0.6, labels, worse)  # fixes ~60% of the mistakes
    comparison = stats.compare_classification(labels, worse, better, names=("accuracy", "matthews_correlation"))
    accuracy = comparison["accuracy"]
    assert accuracy["difference"] == pytest.approx(np.mean(better == labels) - np.mean(worse == labels))
    assert 0 < accuracy["ci_low"] < accuracy["difference"] < accuracy["ci_high"]
    assert accuracy["test"] == "McNemar exact test" and accuracy["p_value"] < 1e-10
    assert comparison["matthews_correlation"]["p_value"] < 0.01
    assert "larger than this evaluation set's noise (p < 0.05" in stats.verdict("accuracy", accuracy)
    right, wrong = np.flatnonzero(worse == labels), np.flatnonzero(worse != labels)
    shuffled = worse.copy()  # 8 right answers lost and 12 mistakes fixed: +4 sentences of 872
    shuffled[right[:8]], shuffled[wrong[:12]] = 1 - labels[right[:8]], labels[wrong[:12]]
    chance = stats.compare_classification(labels, worse, shuffled)["accuracy"]
    assert chance["difference"] == pytest.approx(4 / 872)
    assert chance["ci_low"] < 0 < chance["ci_high"]
    assert chance["p_value"] == pytest.approx(2 * sum(math.comb(20, k) for k in range(9)) / 2**20)
    assert not stats.is_beyond_noise(chance)


def test_score_comparison_permutation_p_value_tracks_the_effect():
    rng = np.random.default_rng(5)
    a = 100 * rng.random(2000)
    near, far = a + rng.normal(0, 1, 2000), a + 5 + rng.normal(0, 30, 2000)
    assert stats.compare_scores({"f1": a}, {"f1": far})["f1"]["p_value"] < 0.01
    result = stats.compare_scores({"f1": a}, {"f1": near})["f1"]
    assert result["ci_low"] < result["difference"] < result["ci_high"]
    assert result["difference"] == pytest.approx(np.mean(near - a))
