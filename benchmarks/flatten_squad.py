#!/usr/bin/env python
"""Writes a SQuAD file in the official nested layout (data -> paragraphs -> qas, optionally .gz) as the flat JSON the
transformers example run_qa.py reads with load_dataset("json", field="data"): one record per question with id,
title, context, question and answers {text: [...], answer_start: [...]} (the Hub's squad layout). Used by
benchmarks/gpu_benchmarks.sh for the baseline run; standard library only.

    python benchmarks/flatten_squad.py IN.json[.gz] OUT.json [--max_questions N]
"""

import argparse
import gzip
import json


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--max_questions", type=int, default=None, help="Keep only the first N questions.")
    args = parser.parse_args()
    opener = gzip.open if args.source.endswith(".gz") else open
    with opener(args.source, "rt", encoding="utf-8") as f:
        document = json.load(f)
    records = []
    for article in document["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                records.append({
                    "id": qa["id"], "title": article.get("title", ""), "context": paragraph["context"],
                    "question": qa["question"],
                    "answers": {"text": [a["text"] for a in qa["answers"]],
                                "answer_start": [a["answer_start"] for a in qa["answers"]]},
                })
    if args.max_questions is not None:
        records = records[: args.max_questions]
    with open(args.target, "w", encoding="utf-8") as f:
        json.dump({"version": document.get("version", ""), "data": records}, f, ensure_ascii=False)
    print(f"{args.source}: {len(records)} questions -> {args.target}")


if __name__ == "__main__":
    main()
