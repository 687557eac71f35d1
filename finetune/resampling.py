"""How finetune.stats resamples: bootstrap resamples of the examples, random swaps of two runs' results, and the
metrics of each, BATCH resamples at a time (one (resamples, examples) array each: numpy does the loop)."""

import numpy as np

CONFIDENCE = 0.95
BATCH = 100  # resamples per index matrix: 8 MB of indices for SQuAD's 10,570 questions


def as_arrays(*groups):
    """The groups of per-example arrays as numpy arrays, and their common length."""
    groups = [[np.asarray(x) for x in group] for group in groups]
    lengths = {len(x) for group in groups for x in group}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"per-example arrays must be non-empty and of one length (got lengths {sorted(lengths)})")
    return groups, lengths.pop()


def index_batches(n, n_resamples, seed):
    """Bootstrap resamples of range(n), up to BATCH rows at a time; the same for the same (n, seed)."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, BATCH):
        yield rng.integers(0, n, size=(min(BATCH, n_resamples - start), n))


def metric_rows(metric_fn, arrays, vectorized):
    """{name: one value per row} of metric_fn over (rows, examples) arrays."""
    if vectorized:
        return {name: np.asarray(value, float) for name, value in metric_fn(*arrays).items()}
    rows = [metric_fn(*row) for row in zip(*arrays)]
    return {name: np.array([row[name] for row in rows], float) for name in rows[0]}


def percentile_interval(values, confidence=CONFIDENCE):
    """(low, high) holding the central `confidence` of the values; undefined resamples (NaN) left out, and (NaN, NaN)
    where every one is (a correlation of constant predictions)."""
    values = np.concatenate(values)
    if np.isnan(values).all():
        return float("nan"), float("nan")
    low, high = np.nanquantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def resampled_pairs(shared, a, b, n, n_resamples, seed):
    """(shared, a, b) on the same resampled examples, up to BATCH resamples at a time: the paired bootstrap."""
    for rows in index_batches(n, n_resamples, seed):
        yield [[x[rows] for x in group] for group in (shared, a, b)]


def swapped_pairs(shared, a, b, n, n_resamples, seed):
    """(shared, a, b) with each example's A and B results swapped at random: what chance alone would give."""
    rng = np.random.default_rng(seed + 1)
    for start in range(0, n_resamples, BATCH):
        swap = rng.random((min(BATCH, n_resamples - start), n)) < 0.5
        yield ([np.broadcast_to(x, swap.shape) for x in shared], [np.where(swap, y, x) for x, y in zip(a, b)],
               [np.where(swap, x, y) for x, y in zip(a, b)])


def differences(metric_fn, pairs, vectorized):
    """{name: [B's metric minus A's, one array per batch]} over batches of (shared, a, b) rows."""
    found = {}
    for shared, a, b in pairs:
        scores_a, scores_b = (metric_rows(metric_fn, shared + run, vectorized) for run in (a, b))
        for name in scores_a:
            found.setdefault(name, []).append(scores_b[name] - scores_a[name])
    return found
