#!/usr/bin/env python
"""Our question-answering pipeline (utils_qa.qa_pipeline, float32 and bfloat16) against transformers 4's
(QuestionAnsweringPipeline of transformers 4.57.6, the one our users had before transformers 5 removed it): the same
model folder, the same SQuAD questions, the same options, in one run: questions/s, EM, F1 and the speed ratio.

    python benchmarks/bench_qa_peer.py --model_dir DIR [--squad_file ../shared/data/squad/dev-v1.1.json]
        [--questions 1000] [--batch_size 8] [--repeats 2] [--chunk 100] [--venv DIR] [--out F.json]

transformers 4.57.6 runs in a virtual environment of its own that the script builds once (--venv, default
~/.cache/bench-qa-peer/transformers-4.57.6: `pip install transformers==4.57.6 torch==<this torch>`, the same torch
wheel as here), in a worker process that loads the model once and answers the chunks it is sent. Options matched
both ways: --max_seq_len tokens per window, --doc_stride, --max_answer_len, questions cut at 64 tokens, no "no
answer", --batch_size windows per forward pass, the same torch thread count. Each way answers every question once
(scored, and the warm-up), then the ways take turns on chunks of --chunk questions (each way first in turn), so that
other work on a shared machine slows them alike; a way's time is its sum over the chunks, the best of --repeats
passes. The worker times its own calls, so the time spent passing questions and answers between the processes is
not counted against transformers 4.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEER_TRANSFORMERS = "4.57.6"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="a question-answering model folder (run_squad.py's)")
    parser.add_argument("--squad_file", default=str(REPO.parent / "shared/data/squad/dev-v1.1.json"))
    parser.add_argument("--questions", type=int, default=1000, help="the first N questions of --squad_file")
    parser.add_argument("--batch_size", type=int, default=8, help="windows per forward pass, every way")
    parser.add_argument("--max_seq_len", type=int, default=384)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--max_answer_len", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes, alternating (the best counts)")
    parser.add_argument("--chunk", type=int, default=100, help="questions per turn")
    parser.add_argument("--threads", type=int, default=None, help="torch threads, every way (default: torch's)")
    parser.add_argument("--venv", default=str(Path.home() / f".cache/bench-qa-peer/transformers-{PEER_TRANSFORMERS}"))
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # inside the peer environment
    return parser.parse_args(argv)


def peer_python(venv, torch_version):
    """The peer environment's interpreter, built on first use: transformers 4.57.6 and this torch, pinned."""
    python = Path(venv) / "bin" / "python"
    check = [str(python), "-c", "import torch, transformers; print(torch.__version__, transformers.__version__)"]
    wanted = f"{torch_version} {PEER_TRANSFORMERS}"
    if python.exists() and subprocess.run(check, capture_output=True, text=True).stdout.strip() == wanted:
        return python
    print(f"building {venv}: transformers=={PEER_TRANSFORMERS}, torch=={torch_version}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"transformers=={PEER_TRANSFORMERS}",
                    f"torch=={torch_version.split('+')[0]}"], check=True)
    found = subprocess.run(check, capture_output=True, text=True).stdout.strip()
    if found != wanted:
        sys.exit(f"error: {venv} holds torch/transformers {found}, not {wanted}")
    return python


def worker(args):
    """The peer side: reads {"questions", "contexts"} lines, answers each with one timed pipeline call."""
    import torch
    import transformers
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, QuestionAnsweringPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    # Built directly, not by pipeline(): the model folder's config names our pipeline as a custom one.
    qa = QuestionAnsweringPipeline(model=AutoModelForQuestionAnswering.from_pretrained(args.model_dir).eval(),
                                   tokenizer=AutoTokenizer.from_pretrained(args.model_dir), device=-1)
    options = {"max_seq_len": args.max_seq_len, "doc_stride": args.doc_stride, "max_answer_len": args.max_answer_len,
               "max_question_len": 64, "handle_impossible_answer": False, "batch_size": args.batch_size}
    print(json.dumps({"ready": transformers.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        start = time.perf_counter()
        answers = qa(question=request["questions"], context=request["contexts"], **options)
        seconds = time.perf_counter() - start
        answers = [answers] if isinstance(answers, dict) else answers
        print(json.dumps({"answers": [a["answer"] for a in answers], "s": seconds}), flush=True)


class Peer:
    """The worker process in the peer environment; ask() returns (answers, seconds the worker measured)."""

    def __init__(self, python, args):
        flags = ["--model_dir", args.model_dir, "--batch_size", args.batch_size, "--max_seq_len", args.max_seq_len,
                 "--doc_stride", args.doc_stride, "--max_answer_len", args.max_answer_len]
        flags += ["--threads", args.threads] if args.threads else []
        env = {**os.environ, "PYTHONPATH": ""}  # nothing of this repository or its environment
        self.process = subprocess.Popen([str(python), __file__, "--worker", *map(str, flags)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env, cwd="/")
        self.info = json.loads(self.process.stdout.readline())

    def ask(self, questions, contexts):
        self.process.stdin.write(json.dumps({"questions": questions, "contexts": contexts}) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        return reply["answers"], reply["s"]

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def ours(args, dtype):
    """(answer(questions, contexts) -> (answers, seconds)) with our pipeline computing in dtype."""
    from utils_qa import qa_pipeline

    qa = qa_pipeline(args.model_dir, device="cpu", dtype=dtype)
    options = {"max_seq_len": args.max_seq_len, "doc_stride": args.doc_stride, "max_answer_len": args.max_answer_len,
               "max_question_len": 64, "handle_impossible_answer": False, "batch_size": args.batch_size}

    def answer(questions, contexts):
        start = time.perf_counter()
        answers = [a["answer"] for a in qa(question=questions, context=contexts, **options)]
        return answers, time.perf_counter() - start
    return answer


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    sys.path.insert(0, str(REPO))
    import torch

    from finetune.data import load_squad_file
    from finetune.qa_report import squad_scoring

    if args.threads:
        torch.set_num_threads(args.threads)
    records = load_squad_file(args.squad_file)[:args.questions]
    questions, contexts = [r["question"] for r in records], [r["context"] for r in records]
    golds = [r["answers"]["text"] for r in records]
    peer = Peer(peer_python(args.venv, torch.__version__), args)
    peer_name = f"transformers {peer.info['ready']}"
    ways = {"ours, float32": ours(args, "float32"), "ours, bfloat16": ours(args, "bfloat16"), peer_name: peer.ask}
    scoring = squad_scoring()
    scores = {}
    for name, way in ways.items():  # every question once: the scores, and the warm-up
        answers, _ = way(questions, contexts)
        per_question = [scoring.question_scores(a, g) for a, g in zip(answers, golds)]
        scores[name] = {"exact_match": round(100 * sum(s[0] for s in per_question) / len(records), 2),
                        "f1": round(100 * sum(s[1] for s in per_question) / len(records), 2)}
        print(f"{name}: EM {scores[name]['exact_match']}, F1 {scores[name]['f1']}", flush=True)

    names, chunk = list(ways), args.chunk or len(records)
    times = {name: [] for name in names}
    load = [round(os.getloadavg()[0], 2)]
    for repeat in range(args.repeats):
        spent = dict.fromkeys(names, 0.0)
        for c, begin in enumerate(range(0, len(records), chunk)):
            turn = (repeat + c) % len(names)
            for name in names[turn:] + names[:turn]:
                spent[name] += ways[name](questions[begin:begin + chunk], contexts[begin:begin + chunk])[1]
        for name in names:
            times[name].append(round(spent[name], 3))
    load.append(round(os.getloadavg()[0], 2))
    peer.close()

    best = {name: min(t) for name, t in times.items()}
    n = len(records)
    rows = [{"way": name, "s": best[name], "questions_per_s": round(n / best[name], 2),
             "ratio": round(best[peer_name] / best[name], 3), **scores[name]} for name in names]
    result = {"what": "question answering on a CPU against transformers 4", "questions": n,
              "squad_file": os.path.basename(args.squad_file), "model_dir": args.model_dir,
              "batch_size": args.batch_size, "max_seq_len": args.max_seq_len, "doc_stride": args.doc_stride,
              "max_answer_len": args.max_answer_len, "threads": torch.get_num_threads(),
              "peer_threads": peer.info["threads"], "chunk": chunk, "repeats": args.repeats, "rows": rows,
              "times_s": times, "load_avg_1min": load, "torch": torch.__version__,
              "python": platform.python_version(), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    print(f"\n| way | seconds (best of {args.repeats}) | questions/s | EM | F1 | speed against {peer_name} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['way']} | {row['s']:.2f} | {row['questions_per_s']:.1f} | {row['exact_match']:.2f} | "
              f"{row['f1']:.2f} | {row['ratio']:.2f}x |")
    print(f"{n} questions, batch {args.batch_size}, {result['threads']} torch threads; load average {load[0]} -> "
          f"{load[1]}")
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
