#!/usr/bin/env python
r"""Run one recipe over several seeds and summarize how far its results move from one seed to the next.

    python run_seeds.py run_glue_sst2.py recipes/sst2/minilm-l6.yaml --seeds 1,2,3,4,5
    python run_seeds.py run_squad.py recipes/squad/minilm-l6.yaml --num_train_epochs 1 --seeds 1,2,3 \
        --launcher "torchrun --nproc_per_node 2"

Each seed is an ordinary run of SCRIPT with `--seed N --output_dir OUTPUT_DIR/seed-N` (OUTPUT_DIR: the command
line's --output_dir, else the recipe's): resumable, locked and checked like any output folder. Every other flag goes
to SCRIPT unchanged. --launcher is the command that starts SCRIPT instead of this Python (torchrun, accelerate
launch): one GPU or several, the seeds run one after the other. A rerun trains only the seeds not finished yet:
a seed is finished when its folder holds eval_results.json from a run of the same command on the same files, which
this script records in OUTPUT_DIR/.seeds.json. A seed whose training diverged is listed as such and not averaged.
Writes OUTPUT_DIR/seeds_summary.json ({metric: {mean, std (sample), min, max, n, values {seed: value}, diverged}}),
seeds_summary.md (the table) and seeds_summary.png (each seed's value of each metric).
"""

import io
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from finetune.card import read_json
from finetune.cli import RECIPE_SUFFIXES, InputError, RecipeLoader, run_main
from finetune.outputs import atomic_write_json, atomic_write_text
from finetune.runs import RUN_RECORD
from finetune.runs import fingerprint
from finetune.seed_summary import save_strip_chart, summarize, summary_table

SEEDS = 2**32
RECORD = ".seeds.json"  # per seed: what ran in its folder, and how it ended
DIVERGED = "error: training diverged"  # how the scripts' divergence check ends a run (finetune.trainer)
USAGE = "usage: python run_seeds.py SCRIPT [RECIPE] [--key value ...] --seeds 1,2,3 [--launcher \"torchrun ...\"]"


def parse_seeds(text):
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or any(not 0 <= seed < SEEDS for seed in seeds) or len(set(seeds)) < len(seeds):
        raise InputError(f"--seeds {text!r}: give distinct whole numbers from 0 to {SEEDS - 1}, separated by "
                         "commas, e.g. --seeds 1,2,3")
    return seeds


def take_option(args, name):
    """(value of --name or --name=value, the other arguments); the last occurrence wins, as for the scripts."""
    value, rest, i = None, [], 0
    while i < len(args):
        if args[i] == f"--{name}":
            if i + 1 == len(args):
                raise InputError(f"--{name} needs a value; {USAGE}")
            value, i = args[i + 1], i + 2
        elif args[i].startswith(f"--{name}="):
            value, i = args[i].split("=", 1)[1], i + 1
        else:
            rest.append(args[i])
            i += 1
    return value, rest


def read_recipe(args):
    """The recipe mapping when the first argument names one, else {}."""
    if not args or not args[0].endswith(RECIPE_SUFFIXES) or not Path(args[0]).is_file():
        return {}
    try:
        recipe = yaml.load(Path(args[0]).read_text(encoding="utf-8"), Loader=RecipeLoader)
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
        raise InputError(f"recipe file {args[0]} is not valid YAML/JSON: {str(error).splitlines()[0]}") from None
    return recipe if isinstance(recipe, dict) else {}


def parse_command(argv):
    """(script, forwarded arguments, seeds, launcher words, OUTPUT_DIR) of a run_seeds command line."""
    if not argv or argv[0].startswith("-") or not Path(argv[0]).is_file():
        raise InputError(f"the first argument must be the script to run (run_glue_sst2.py, run_squad.py); {USAGE}")
    seeds, rest = take_option(argv[1:], "seeds")
    launcher, rest = take_option(rest, "launcher")
    output_dir, rest = take_option(rest, "output_dir")
    if seeds is None:
        raise InputError(f"--seeds is missing; {USAGE}")
    seeds = parse_seeds(seeds)
    if take_option(rest, "seed")[0] is not None:
        raise InputError("--seed is set by run_seeds.py for each run: give the seeds with --seeds only")
    output_dir = output_dir or read_recipe(rest).get("output_dir")
    if not output_dir:
        raise InputError("no --output_dir on the command line or in the recipe: give the folder the seed folders go "
                         "into")
    return argv[0], rest, seeds, shlex.split(launcher or "") or [sys.executable], Path(output_dir)


def inputs_of(args):
    """Fingerprints of the files the run reads that the command line or the recipe names."""
    named = [*args, *(str(value) for value in read_recipe(args).values())]
    return {name: fingerprint(name) for name in dict.fromkeys(named) if Path(name).is_file()}


def launch(command):
    """Runs the command with its output shown as it comes; returns (exit code, whether its training diverged)."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    diverged = False
    # newline="": progress bars' carriage returns pass through as they are, so a bar still redraws in place
    for line in io.TextIOWrapper(process.stderr, errors="replace", newline=""):
        sys.stderr.write(line)
        diverged = diverged or DIVERGED in line
    return process.wait(), diverged


def run_seed(script, args, seed, launcher, output_dir, record):
    """Trains and evaluates one seed unless its folder holds this command's finished run; returns its status."""
    folder = output_dir / f"seed-{seed}"
    ran = {"launcher": launcher[1:] if launcher == [sys.executable] else launcher, "script": script, "args": args,
           "inputs": inputs_of(args)}
    earlier = record.get(str(seed), {})
    if earlier.get("ran") == ran and (earlier.get("status") == "diverged" or (
            (folder / "eval_results.json").is_file() and read_json(folder / RUN_RECORD) == earlier.get("run"))):
        print(f"seed {seed}: {earlier['status']} earlier in {folder}, kept")
        return earlier["status"]
    print(f"seed {seed}: running into {folder}", flush=True)
    code, diverged = launch([*launcher, script, *args, "--seed", str(seed), "--output_dir", str(folder)])
    if code and not diverged:
        raise InputError(f"seed {seed} failed (exit code {code}; its message is above); the seeds finished before it "
                         f"are kept in {output_dir}: fix the problem and rerun the same command")
    if not code and not (folder / "eval_results.json").is_file():
        raise InputError(f"seed {seed} wrote no eval_results.json in {folder}: run_seeds.py summarizes evaluations; "
                         "add --do_eval (and a validation set)")
    status = "diverged" if diverged else "finished"
    record[str(seed)] = {"ran": ran, "status": status, "run": read_json(folder / RUN_RECORD)}
    atomic_write_json(output_dir / RECORD, record)
    return status


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return
    script, args, seeds, launcher, output_dir = parse_command(argv)
    created = not output_dir.exists()
    record = read_json(output_dir / RECORD) or {}
    try:
        statuses = {seed: run_seed(script, args, seed, launcher, output_dir, record) for seed in seeds}
    except InputError:
        if created and output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()  # the first seed failed before writing anything: leave no empty folder behind
        raise
    results = {seed: read_json(output_dir / f"seed-{seed}" / "eval_results.json") or {}
               for seed, status in statuses.items() if status == "finished"}
    diverged = [seed for seed, status in statuses.items() if status == "diverged"]
    summary = summarize(results, diverged)
    command = shlex.join(["python", "run_seeds.py", *argv])
    atomic_write_json(output_dir / "seeds_summary.json", summary)
    table = summary_table(summary, seeds, command)
    atomic_write_text(output_dir / "seeds_summary.md", table)
    save_strip_chart(summary, output_dir / "seeds_summary.png", title=f"{output_dir.name}: {len(results)} seeds")
    print(table)
    print(f"Written: {output_dir / 'seeds_summary.json'}, seeds_summary.md, seeds_summary.png")


if __name__ == "__main__":
    run_main(main)
