"""Compare two evaluated runs of the same task example by example: where their predictions disagree, and which one
is right there (a cased against an uncased model, two learning rates, ...).

    python compare_runs.py outputs/sst2-cased outputs/sst2-uncased
    python compare_runs.py outputs/squad-a outputs/squad-b --validation_file data/squad/dev-v1.1.json

Each folder is the --output_dir of a run with --do_eval. SST-2 folders are read through their eval_predictions.tsv
(every validation sentence, its gold label and the run's prediction); SQuAD folders through eval_predictions.json
({question id: answer}), where two answers disagree when their text differs after SQuAD's normalization (lower
case, no punctuation or articles). --validation_file, the SQuAD file both runs were evaluated on, adds each
question, its gold answers, each run's F1 and the context with the gold and both predicted spans highlighted.

Writes DIR/disagreements.tsv and DIR/disagreements.html (open it in a browser: sort, filter, click a row for its
context), default DIR ./compare-<A>-vs-<B>, and prints a summary. Nothing else in DIR is touched, and a
disagreements.* file there that this command did not write is never replaced.
"""

import argparse
import json
import sys
from pathlib import Path

from finetune.cli import InputError, raise_input_errors, run_main
from finetune.data import load_squad_file, read_records, read_text, tsv_cell
from finetune.outputs import atomic_write_text
from finetune.qa_report import squad_scoring
from finetune.report import failure_page
from run_glue_sst2 import LABEL_NAMES

SST2_FILE, SQUAD_FILE = "eval_predictions.tsv", "eval_predictions.json"
TASK_NAMES = {"sst2": "SST-2", "squad": "SQuAD"}
SST2_COLUMNS = ("index", "gold", "predicted", "probability", "sentence")
OUTPUT_NAMES = ("disagreements.tsv", "disagreements.html")
GENERATOR = "compare_runs.py"  # marks our pages: only those, and our TSVs (HEADERS), are replaced by a later run
HEADERS = {
    "sst2": "index\tgold\tA_predicted\tA_probability\tB_predicted\tB_probability\tright\tsentence",
    "squad": "id\tgold\tA_answer\tA_f1\tB_answer\tB_f1\tright\tquestion",
    "squad_unscored": "id\tA_answer\tB_answer",
}
RERUN = "it is written by an evaluation (--do_eval): evaluate the run again, or fix that row"


# ---- Reading a run's predictions


def task_of(folder):
    """("sst2" | "squad", path of the predictions file) of an output folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder; give the --output_dir of an evaluated run")
    found = [(task, folder / name) for task, name in (("sst2", SST2_FILE), ("squad", SQUAD_FILE))
             if (folder / name).is_file()]
    if not found:
        raise InputError(f"{folder}: no {SST2_FILE} (SST-2) or {SQUAD_FILE} (SQuAD) in it; give the --output_dir of "
                         "a run with --do_eval, or evaluate this one again (--model_name_or_path "
                         f"{folder} --do_eval --output_dir NEW_FOLDER) and compare NEW_FOLDER")
    if len(found) > 1:
        raise InputError(f"{folder}: holds both {SST2_FILE} (SST-2) and {SQUAD_FILE} (SQuAD), so its task is unclear; "
                         "compare folders of one run each")
    return found[0]


def read_sst2(path):
    """{index: {gold, predicted, probability, sentence, _row}} from an eval_predictions.tsv, every row checked."""
    rows = read_records(path, flag="an SST-2 predictions file")
    missing = [name for name in SST2_COLUMNS if name not in rows[0]]
    if missing:
        columns = ", ".join(c for c in rows[0] if c != "_row")
        raise InputError(f"{path}: no column(s) {', '.join(missing)} (columns: {columns}); expected "
                         f"{', '.join(SST2_COLUMNS)}: {RERUN}")
    predictions = {}
    for row in rows:
        where = f"{path}, {row['_row']}"
        if not row["index"].isascii() or not row["index"].isdigit():
            raise InputError(f"{where}: index {row['index']!r} is not a whole number; {RERUN}")
        index = int(row["index"])
        if index in predictions:
            raise InputError(f"{where}: index {index} appears twice (first at {predictions[index]['_row']}); {RERUN}")
        for column in ("gold", "predicted"):
            if row[column] not in LABEL_NAMES:
                raise InputError(f"{where}: {column} {row[column]!r} is not negative or positive; {RERUN}")
        try:
            probability = float(row["probability"])
        except ValueError:
            probability = None
        if probability is None or not 0 <= probability <= 1:  # (NaN fails the comparison too)
            raise InputError(f"{where}: probability {row['probability']!r} is not a number from 0 to 1; {RERUN}")
        predictions[index] = {**row, "probability": probability}
    return predictions


def read_squad(path):
    """{question id: answer text} from an eval_predictions.json, every entry checked."""
    try:
        predictions = json.loads(read_text(path, flag="a SQuAD predictions file"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}, line {error.lineno}: broken JSON ({error.msg}); {RERUN}") from None
    except (ValueError, RecursionError):
        raise InputError(f"{path}: not readable as JSON; {RERUN}") from None
    if not isinstance(predictions, dict) or not predictions:
        raise InputError(f"{path}: expected a JSON object of question id -> answer text with at least one entry; "
                         f"{RERUN}")
    for n, (qid, answer) in enumerate(predictions.items(), 1):
        if not isinstance(answer, str):
            raise InputError(f"{path}, entry {n} (id {qid!r}): the answer is {type(answer).__name__} "
                             f"{json.dumps(answer)[:40]}, not text; {RERUN}")
    return predictions


def check_same_sentences(a, b, path_a, path_b):
    if a.keys() != b.keys():
        raise InputError(f"{path_a} holds {len(a)} sentences and {path_b} {len(b)}"
                         f"{' with other indices' if len(a) == len(b) else ''}: the runs were evaluated on different "
                         "validation data (or --max_eval_samples); compare runs evaluated on the same sentences")
    for index, row in a.items():
        other = b[index]
        for column in ("sentence", "gold"):
            if row[column] != other[column]:
                raise InputError(f"index {index}: the {column} at {path_a}, {row['_row']} differs from the one at "
                                 f"{path_b}, {other['_row']}: the runs were evaluated on different validation data; "
                                 "compare runs evaluated on the same sentences")


def check_same_questions(a, b, path_a, path_b):
    if a.keys() != b.keys():
        only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        example = f"id {only_a[0]!r} is only in {path_a}" if only_a else f"id {only_b[0]!r} is only in {path_b}"
        raise InputError(f"{path_a} answers {len(a)} questions and {path_b} {len(b)} ({example}): the runs were "
                         "evaluated on different questions (or --max_eval_samples); compare runs evaluated on the "
                         "same questions")


# ---- Comparing


def compare_sst2(a, b, names):
    """(TSV text, page, summary lines) of the sentences two SST-2 runs classify differently."""
    rows = []
    for index, row in sorted(a.items()):
        other = b[index]
        if row["predicted"] != other["predicted"]:
            right = "A" if row["predicted"] == row["gold"] else "B"
            rows.append({"index": index, "gold": row["gold"], "a": row["predicted"],
                         "a_probability": row["probability"], "b": other["predicted"],
                         "b_probability": other["probability"], "right": right, "sentence": row["sentence"]})
    lines = [HEADERS["sst2"]] + [
        f"{r['index']}\t{r['gold']}\t{r['a']}\t{r['a_probability']:.4f}\t{r['b']}\t{r['b_probability']:.4f}\t"
        f"{r['right']}\t{tsv_cell(r['sentence'])}" for r in rows
    ]
    accuracy = [sum(p["predicted"] == p["gold"] for p in run.values()) / len(run) for run in (a, b)]
    summary = [f"Compared {len(a)} sentences: A and B disagree on {len(rows)}.",
               f"Accuracy on all of them: A {accuracy[0]:.4f}, B {accuracy[1]:.4f}.",
               (f"Where they disagree, A is right on {sum(r['right'] == 'A' for r in rows)} and B on "
                f"{sum(r['right'] == 'B' for r in rows)}.")]
    columns = [("index", "index"), ("gold", "gold"), ("a", "A predicted"), ("a_probability", "A probability"),
               ("b", "B predicted"), ("b_probability", "B probability"), ("right", "right"), ("sentence", "sentence")]
    page = failure_page(f"SST-2: where {names[0]} and {names[1]} disagree", intro(names, summary), columns, rows,
                        generator=GENERATOR)
    return "\n".join(lines) + "\n", page, summary


def answer_span(context, text):
    """[start, end] of the first occurrence of text in context; None if it is empty or not there."""
    start = context.find(text) if text else -1
    return None if start < 0 else [start, start + len(text)]


def compare_squad(a, b, names, questions=None):
    """(TSV text, page, summary lines) of the questions two SQuAD runs answer differently (normalized text).
    questions: {id: record of load_squad_file} to score the answers and show the contexts, or None."""
    metric = squad_scoring()
    differ = [qid for qid in a if metric.normalize_answer(a[qid]) != metric.normalize_answer(b[qid])]
    summary = [f"Compared {len(a)} questions: A and B answer {len(differ)} of them differently (normalized text)."]
    if questions is None:
        rows = [{"id": qid, "a": a[qid], "b": b[qid]} for qid in differ]
        lines = [HEADERS["squad_unscored"]] + [f"{qid}\t{tsv_cell(a[qid])}\t{tsv_cell(b[qid])}" for qid in differ]
        summary.append("Give --validation_file (the SQuAD file both were evaluated on) to score them and see which "
                       "is right.")
        columns = [("id", "id"), ("a", "A answer"), ("b", "B answer")]
        page = failure_page(f"SQuAD: where {names[0]} and {names[1]} answer differently", intro(names, summary),
                            columns, rows, generator=GENERATOR)
        return "\n".join(lines) + "\n", page, summary

    def scores(answer, golds):
        """(exact match, F1) of one answer; a question without gold answers (SQuAD v2) wants no answer."""
        if not golds:
            return (float(not metric.normalize_answer(answer)),) * 2
        return metric.question_scores(answer, golds)

    totals, rows = {"a": [0.0, 0.0], "b": [0.0, 0.0]}, []
    for qid in a:
        record, golds = questions[qid], questions[qid]["answers"]["text"]
        result = {run: scores(answers[qid], golds) for run, answers in (("a", a), ("b", b))}
        for run, (exact, f1) in result.items():
            totals[run][0] += exact
            totals[run][1] += f1
        if qid not in differ:
            continue
        right = {(1, 1): "both", (1, 0): "A", (0, 1): "B", (0, 0): "neither"}[(result["a"][0], result["b"][0])]
        # SQuAD's annotators often agree: each distinct gold answer (and span) once
        spans = [[start, start + len(text), "gold"]
                 for text, start in dict.fromkeys(zip(golds, record["answers"]["answer_start"]))]
        spans += [[*span, run] for run, answers in (("a", a), ("b", b))
                  if (span := answer_span(record["context"], answers[qid]))]
        gold = " | ".join(dict.fromkeys(golds)) or "(no answer)"
        rows.append({"id": qid, "question": record["question"], "gold": gold,
                     "a": a[qid] or "(no answer)", "a_f1": round(result["a"][1], 3),
                     "b": b[qid] or "(no answer)", "b_f1": round(result["b"][1], 3), "right": right,
                     "context": record["context"], "spans": spans})
    lines = [HEADERS["squad"]] + [
        "\t".join(tsv_cell(r[key]) for key in ("id", "gold", "a")) + f"\t{r['a_f1']:.3f}\t{tsv_cell(r['b'])}\t"
        f"{r['b_f1']:.3f}\t{r['right']}\t{tsv_cell(r['question'])}" for r in rows
    ]
    exact_a, f1_a = (100 * total / len(a) for total in totals["a"])
    exact_b, f1_b = (100 * total / len(a) for total in totals["b"])
    count = {name: sum(r["right"] == name for r in rows) for name in ("A", "B", "both", "neither")}
    summary += [f"Exact match / F1 on all of them: A {exact_a:.2f} / {f1_a:.2f}, B {exact_b:.2f} / {f1_b:.2f}.",
                (f"Where they differ, A is exactly right on {count['A']}, B on {count['B']}, both (different gold "
                 f"answers) on {count['both']}, neither on {count['neither']}.")]
    columns = [("id", "id"), ("question", "question"), ("gold", "gold"), ("a", "A answer"), ("a_f1", "A F1"),
               ("b", "B answer"), ("b_f1", "B F1"), ("right", "right")]
    page = failure_page(f"SQuAD: where {names[0]} and {names[1]} answer differently", intro(names, summary), columns,
                        rows, text_key="context", span_labels={"a": f"A ({names[0]})", "b": f"B ({names[1]})"},
                        generator=GENERATOR)
    return "\n".join(lines) + "\n", page, summary


def intro(names, summary):
    return f"A: {names[0]}\nB: {names[1]}\n" + " ".join(summary)


def squad_questions(path, predictions, predictions_path):
    """{id: record} of the validation file's questions, for every predicted id."""
    questions = {record["id"]: record for record in load_squad_file(path, version_2_with_negative=True)}
    unknown = [qid for qid in predictions if qid not in questions]
    if unknown:
        raise InputError(f"{path} has no question with id {unknown[0]!r} ({len(unknown)} ids of {predictions_path} "
                         "are not in it); give the validation file the runs were evaluated on")
    return questions


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
    return start.split("\n", 1)[0] in HEADERS.values()


def write_outputs(output_dir, tsv, page):
    """Writes disagreements.tsv and .html, after checking that neither replaces a file of the user's."""
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"--output_dir {output_dir} is a file; give a folder (it is created if missing)")
    for name in OUTPUT_NAMES:
        path = output_dir / name
        if path.is_dir() or path.exists() and not is_ours(path):
            raise InputError(f"{path} exists and was not written by compare_runs.py, so it is left as is; move it or "
                             "choose another --output_dir")
    paths = [output_dir / name for name in OUTPUT_NAMES]
    for path, text in zip(paths, (tsv, page)):
        atomic_write_text(path, text)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", help="output folder of the first run (A)")
    parser.add_argument("run_b", help="output folder of the second run (B), same task")
    parser.add_argument("--output_dir", help="where to write disagreements.tsv/.html (default: ./compare-A-vs-B)")
    parser.add_argument("--validation_file", help="SQuAD: the file both runs were evaluated on (adds questions, "
                                                  "gold answers, F1 and highlighted contexts)")
    raise_input_errors(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))

    (task_a, path_a), (task_b, path_b) = task_of(args.run_a), task_of(args.run_b)
    if task_a != task_b:
        raise InputError(f"{args.run_a} holds {TASK_NAMES[task_a]} predictions ({path_a.name}) and {args.run_b} "
                         f"{TASK_NAMES[task_b]} predictions ({path_b.name}); compare two runs of the same task")
    names = [Path(run).resolve().name for run in (args.run_a, args.run_b)]
    output_dir = Path(args.output_dir or f"compare-{names[0]}-vs-{names[1]}")
    if task_a == "sst2":
        if args.validation_file:
            print("Note: --validation_file is not needed for SST-2 (eval_predictions.tsv holds the sentences and "
                  "gold labels); it is not read", file=sys.stderr)
        a, b = read_sst2(path_a), read_sst2(path_b)
        check_same_sentences(a, b, path_a, path_b)
        tsv, page, summary = compare_sst2(a, b, names)
    else:
        a, b = read_squad(path_a), read_squad(path_b)
        check_same_questions(a, b, path_a, path_b)
        questions = squad_questions(args.validation_file, a, path_a) if args.validation_file else None
        tsv, page, summary = compare_squad(a, b, names, questions)
    written = write_outputs(output_dir, tsv, page)
    print(f"A: {args.run_a}\nB: {args.run_b}\n" + "\n".join(summary))
    print(f"Written: {written[0]} and {written[1]} (open it in a browser)")


if __name__ == "__main__":
    run_main(main)
