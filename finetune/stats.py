"""Error bars: 95% bootstrap intervals of a metric over the evaluated examples, and the paired comparison of two runs
on the same examples (the difference B - A, its interval and a p-value). Every resampling has a fixed seed: the
same predictions always give the same interval.

A metric function takes per-example arrays and returns {name: value}. One written along the last axis
(`scores.mean(axis=-1)`) is vectorised: it then takes (resamples, examples) arrays and returns one value per
resample at once, which is what keeps a thousand resamples of ten thousand examples well under a second."""

import numpy as np

from finetune.metric_arrays import classification_metric, mean_metric
from finetune.resampling import (as_arrays, differences, index_batches, metric_rows, percentile_interval,
                                 resampled_pairs, swapped_pairs)

RESAMPLES, SEED, SIGNIFICANCE = 1000, 0, 0.05


def bootstrap_intervals(metric_fn, arrays, n_resamples=RESAMPLES, seed=SEED, vectorized=False):
    """{name: (low, high)}: the 95% percentile-bootstrap interval of each metric metric_fn(*arrays) returns, the
    examples resampled with replacement."""
    (arrays,), _ = as_arrays(arrays)
    samples = {}
    for rows in index_batches(len(arrays[0]), n_resamples, seed):
        for name, values in metric_rows(metric_fn, [x[rows] for x in arrays], vectorized).items():
            samples.setdefault(name, []).append(values)
    return {name: percentile_interval(values) for name, values in samples.items()}


def interval_metrics(intervals, prefix="eval"):
    """The intervals as eval_results.json keys: {prefix_NAME_ci_low: low, prefix_NAME_ci_high: high}; none for a
    metric undefined on every resample (JSON has no NaN)."""
    return {f"{prefix}_{name}_ci_{end}": value for name, (low, high) in intervals.items()
            for end, value in (("low", low), ("high", high)) if np.isfinite(low) and np.isfinite(high)}


def classification_intervals(labels, predictions, names=("accuracy", "f1"), num_classes=None, f1_average="binary",
                             **resampling):
    """{name: (low, high)} of accuracy / f1 / matthews_correlation from gold and predicted class ids."""
    num_classes = num_classes or int(max(np.max(labels), np.max(predictions))) + 1
    metric = classification_metric(names, num_classes, f1_average)
    return bootstrap_intervals(metric, (labels, predictions), vectorized=True, **resampling)


def score_intervals(scores, **resampling):
    """{name: (low, high)} of the mean of each per-example score array in {name: scores} (SQuAD's EM and F1)."""
    return bootstrap_intervals(mean_metric(list(scores)), list(scores.values()), vectorized=True, **resampling)


# ---- Two runs on the same examples


def mcnemar_exact(right_a, right_b):
    """McNemar's exact test, two-sided: if the runs are equally good, each example exactly one of them gets right
    goes to either with probability 1/2. Binomial tail in exact integers (no scipy)."""
    only_a = int(np.sum(np.logical_and(right_a, np.logical_not(right_b))))
    only_b = int(np.sum(np.logical_and(right_b, np.logical_not(right_a))))
    discordant, term = only_a + only_b, 1
    tail = term  # sum of C(discordant, k) for k <= the smaller count, each term from the one before it
    for k in range(1, min(only_a, only_b) + 1):
        term = term * (discordant - k + 1) // k
        tail += term
    return min(1.0, 2 * tail / 2**discordant)


def paired_comparison(metric_fn, shared, a, b, vectorized=True, exact_tests=None, n_resamples=RESAMPLES, seed=SEED):
    """{name: {"a", "b", "difference", "ci_low", "ci_high", "p_value", "test"}} for each metric of
    metric_fn(*shared, *a) against metric_fn(*shared, *b): shared holds what both runs are scored against (the gold
    labels), a and b each run's per-example arrays. The interval is the paired bootstrap's (the same resampled
    examples for both runs); the p-value that of exact_tests {name: (p, test name)} where given, else of a paired
    permutation test (each example's A and B results swapped at random, two-sided)."""
    (shared, a, b), n = as_arrays(shared, a, b)
    value_a, value_b = metric_fn(*shared, *a), metric_fn(*shared, *b)
    resampled = differences(metric_fn, resampled_pairs(shared, a, b, n, n_resamples, seed), vectorized)
    swapped = differences(metric_fn, swapped_pairs(shared, a, b, n, n_resamples, seed), vectorized)
    results = {}
    for name in value_a:
        difference = float(value_b[name]) - float(value_a[name])
        low, high = percentile_interval(resampled[name])
        extreme = np.abs(np.concatenate(swapped[name])) >= abs(difference) - 1e-12 * max(1.0, abs(difference))
        p_value, test = (exact_tests or {}).get(name, ((1 + extreme.sum()) / (1 + n_resamples),
                                                       "paired permutation test"))
        results[name] = {"a": float(value_a[name]), "b": float(value_b[name]), "difference": difference,
                         "ci_low": low, "ci_high": high, "p_value": float(p_value), "test": test}
    return results


def compare_classification(labels, predictions_a, predictions_b, names=("accuracy", "f1"), num_classes=None,
                           f1_average="binary", **resampling):
    """paired_comparison of two runs' predicted class ids; accuracy's p-value from McNemar's exact test."""
    num_classes = num_classes or int(max(np.max(labels), np.max(predictions_a), np.max(predictions_b))) + 1
    labels, predictions_a, predictions_b = map(np.asarray, (labels, predictions_a, predictions_b))
    exact = {"accuracy": (mcnemar_exact(predictions_a == labels, predictions_b == labels), "McNemar exact test")}
    return paired_comparison(classification_metric(names, num_classes, f1_average), [labels], [predictions_a],
                             [predictions_b], exact_tests=exact, **resampling)


def compare_scores(scores_a, scores_b, **resampling):
    """paired_comparison of the means of per-example scores, {name: array} for each run (SQuAD's EM and F1)."""
    names = list(scores_a)
    return paired_comparison(mean_metric(names), [], [scores_a[n] for n in names], [scores_b[n] for n in names],
                             **resampling)


def is_beyond_noise(result, significance=SIGNIFICANCE):
    """Both criteria: p below `significance` and a 95% interval of the difference that excludes 0."""
    return result["p_value"] < significance and (result["ci_low"] > 0 or result["ci_high"] < 0)


def verdict(name, result, significance=SIGNIFICANCE):
    """One sentence on one metric of a paired_comparison."""
    digits = 4 if max(abs(result["a"]), abs(result["b"])) <= 1 else 2  # 0-1 metrics, or SQuAD's 0-100
    number = lambda x, sign="": f"{x:{sign}.{digits}f}"
    numbers = (f"{name}: B - A = {number(result['difference'], '+')} (95% CI {number(result['ci_low'], '+')} to "
               f"{number(result['ci_high'], '+')}, p = {result['p_value']:.3g}, {result['test']})")
    if is_beyond_noise(result, significance):
        return f"{numbers}: larger than this evaluation set's noise (p < {significance:g}, the interval excludes 0)"
    return (f"{numbers}: not larger than this evaluation set's noise (it would take p < {significance:g} and an "
            "interval that excludes 0)")
