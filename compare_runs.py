"""Compare two evaluated runs of the same task example by example: where their predictions disagree, and which one
is right there (a cased against an uncased model, two learning rates, ...).

    python compare_runs.py outputs/sst2-cased outputs/sst2-uncased
    python compare_runs.py outputs/squad-a outputs/squad-b --validation_file data/squad/dev-v1.1.json

Each folder is the --output_dir of a run with --do_eval. Text classification folders are read through their
eval_predictions.tsv (every validation example, its texts, its gold label and the run's prediction); SQuAD folders
through eval_predictions.json ({question id: answer}), where two answers disagree when their text differs after
SQuAD's normalization (lower case, no punctuation or articles). --validation_file, the SQuAD file both runs were
evaluated on, adds each question, its gold answers, each run's F1 and the context with the gold and both predicted
spans highlighted.

Whether B is better than A beyond chance: for each headline metric, the difference B - A with its 95% paired-bootstrap
interval and a p-value (text classification: McNemar's exact test for accuracy, a paired permutation test for F1;
SQuAD, with --validation_file: a paired permutation test of exact match and F1), written to DIR/comparison.json
({metric: {a, b, difference, ci_low, ci_high, p_value, test}}) and printed with one sentence each.

Writes DIR/disagreements.tsv and DIR/disagreements.html (open it in a browser: sort, filter, click a row for its
context), default DIR outputs/compare-<A>-vs-<B>, and prints a summary. Nothing else in DIR is touched, and a
disagreements.* file there that this command did not write is never replaced.
"""

import argparse
import json
import sys
from pathlib import Path

from finetune.cli import raise_input_errors, run_main
from finetune.errors import InputError
from finetune.outputs import atomic_write_text
from finetune.report import failure_page
from finetune.stats import verdict
from finetune.tasks import TASKS, comparison_headers, tasks_with_predictions

OUTPUT_NAMES = ("disagreements.tsv", "disagreements.html", "comparison.json")
GENERATOR = "compare_runs.py"  # marks our pages: only those, and our TSVs (comparison_headers), are replaced later


def task_of(folder):
    """(task module, path of its predictions file) of an output folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder; give the --output_dir of an evaluated run")
    found = tasks_with_predictions(folder)
    if not found:
        expected = " or ".join(f"{task.PREDICTIONS_FILE} ({task.SHORT_NAME})" for task in TASKS)
        raise InputError(f"{folder}: no {expected} in it; give the --output_dir of a run with --do_eval, or evaluate "
                         f"this one again (--model_name_or_path {folder} --do_eval --output_dir NEW_FOLDER) and "
                         "compare NEW_FOLDER")
    if len(found) > 1:
        held = " and ".join(f"{path.name} ({task.SHORT_NAME})" for task, path in found)
        raise InputError(f"{folder}: holds {held}, so its task is unclear; compare folders of one run each")
    return found[0]


def intro(names, summary):
    return f"A: {names[0]}\nB: {names[1]}\n" + " ".join(summary)


# ---- Writing


def is_ours(path):
    """Whether a disagreements.* file was written by this command (and so may be replaced)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            start = f.read(4096)
    except OSError:
        return False
    if path.suffix == ".html":
        return f'<meta name="generator" content="{GENERATOR}">' in start
    if path.suffix == ".json":  # {metric: {"a", "b", ..., "test"}}
        try:
            written = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(written, dict) and all(isinstance(v, dict) and "test" in v for v in written.values())
    return any(start.startswith(header) for header in comparison_headers())


def write_outputs(output_dir, tsv, page, statistics=None):
    """Writes disagreements.tsv and .html (and comparison.json), after checking that none replaces a file of the
    user's."""
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"--output_dir {output_dir} is a file; give a folder (it is created if missing)")
    for name in OUTPUT_NAMES:
        path = output_dir / name
        if path.is_dir() or path.exists() and not is_ours(path):
            raise InputError(f"{path} exists and was not written by compare_runs.py, so it is left as is; move it or "
                             "choose another --output_dir")
    texts = (tsv, page, json.dumps(statistics, indent=2) + "\n" if statistics else None)
    paths = [output_dir / name for name, text in zip(OUTPUT_NAMES, texts) if text is not None]
    for path, text in zip(paths, (text for text in texts if text is not None)):
        atomic_write_text(path, text)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", help="output folder of the first run (A)")
    parser.add_argument("run_b", help="output folder of the second run (B), same task")
    parser.add_argument("--output_dir", help="where to write disagreements.tsv/.html (default: "
                                             "outputs/compare-A-vs-B)")
    parser.add_argument("--validation_file", help="SQuAD: the file both runs were evaluated on (adds questions, "
                                                  "gold answers, F1 and highlighted contexts)")
    raise_input_errors(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))

    (task_a, path_a), (task_b, path_b) = task_of(args.run_a), task_of(args.run_b)
    if task_a is not task_b:
        raise InputError(f"{args.run_a} holds {task_a.SHORT_NAME} predictions ({path_a.name}) and {args.run_b} "
                         f"{task_b.SHORT_NAME} predictions ({path_b.name}); compare two runs of the same task")
    names = [Path(run).resolve().name for run in (args.run_a, args.run_b)]
    output_dir = Path(args.output_dir or Path("outputs") / f"compare-{names[0]}-vs-{names[1]}")
    if args.validation_file and not task_a.READS_VALIDATION_FILE:
        print(f"Note: --validation_file is not needed here ({path_a.name} holds the texts and gold labels); it is not "
              "read", file=sys.stderr)
    comparison = task_a.compare_folders(path_a, path_b, names, args.validation_file)
    page = failure_page(comparison["title"], intro(names, comparison["summary"]), comparison["columns"],
                        comparison["rows"], generator=GENERATOR, **comparison.get("page_options", {}))
    statistics = comparison.get("statistics")
    written = write_outputs(output_dir, comparison["tsv"], page, statistics)
    print(f"A: {args.run_a}\nB: {args.run_b}\n" + "\n".join(comparison["summary"]))
    for name, result in (statistics or {}).items():
        print(f"{name}: A {result['a']:.4g}, B {result['b']:.4g}; " + verdict(name, result).removeprefix(f"{name}: "))
    print(f"Written: {', '.join(map(str, written))} (open the .html in a browser)")


if __name__ == "__main__":
    run_main(main)
