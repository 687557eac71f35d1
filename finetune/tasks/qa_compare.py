"""Where two question-answering runs answer differently (compare_runs.py): their eval_predictions.json read and
checked, each differing question scored against the gold answers when the validation file is given, with its
context and the gold and both predicted spans for the page."""

import json

import numpy as np

from finetune.errors import InputError
from finetune.data import load_squad_file, read_text, tsv_cell
from finetune.qa_report import squad_scoring
from finetune.stats import compare_scores

RERUN = "it is written by an evaluation (--do_eval): evaluate the run again, or fix that row"
HEADERS = {"squad": "id\tgold\tA_answer\tA_f1\tB_answer\tB_f1\tright\tquestion",
           "squad_unscored": "id\tA_answer\tB_answer"}
COMPARISON_HEADERS = tuple(HEADERS.values())  # how compare_runs.py knows a disagreements.tsv of its own


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


def check_same_questions(a, b, path_a, path_b):
    if a.keys() != b.keys():
        only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        example = f"id {only_a[0]!r} is only in {path_a}" if only_a else f"id {only_b[0]!r} is only in {path_b}"
        raise InputError(f"{path_a} answers {len(a)} questions and {path_b} {len(b)} ({example}): the runs were "
                         "evaluated on different questions (or --max_eval_samples); compare runs evaluated on the "
                         "same questions")


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
        lines = [HEADERS["squad_unscored"]] + ["\t".join(map(tsv_cell, (qid, a[qid], b[qid]))) for qid in differ]
        summary.append("Give --validation_file (the SQuAD file both were evaluated on) to score them, see which is "
                       "right, and test whether the difference is beyond this evaluation set's noise.")
        columns = [("id", "id"), ("a", "A answer"), ("b", "B answer")]
        return {"title": f"SQuAD: where {names[0]} and {names[1]} answer differently", "rows": rows,
                "columns": columns, "tsv": "\n".join(lines) + "\n", "summary": summary}

    def scores(answer, golds):
        """(exact match, F1) of one answer; a question without gold answers (SQuAD v2) wants no answer."""
        if not golds:
            return (float(not metric.normalize_answer(answer)),) * 2
        return metric.question_scores(answer, golds)

    totals, rows, per_question = {"a": [0.0, 0.0], "b": [0.0, 0.0]}, [], {"a": [], "b": []}
    for qid in a:
        record, golds = questions[qid], questions[qid]["answers"]["text"]
        result = {run: scores(answers[qid], golds) for run, answers in (("a", a), ("b", b))}
        for run, (exact, f1) in result.items():
            totals[run][0] += exact
            totals[run][1] += f1
            per_question[run].append((100 * exact, 100 * f1))
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
    return {"title": f"SQuAD: where {names[0]} and {names[1]} answer differently", "rows": rows, "columns": columns,
            "tsv": "\n".join(lines) + "\n", "summary": summary, "statistics": compare_scores(
                *({"exact_match": np.array(per_question[run])[:, 0], "f1": np.array(per_question[run])[:, 1]}
                  for run in ("a", "b"))),
            "page_options": {"text_key": "context", "span_labels": {"a": f"A ({names[0]})", "b": f"B ({names[1]})"}}}


def squad_questions(path, predictions, predictions_path):
    """{id: record} of the validation file's questions, for every predicted id."""
    questions = {record["id"]: record for record in load_squad_file(path, version_2_with_negative=True)}
    unknown = [qid for qid in predictions if qid not in questions]
    if unknown:
        raise InputError(f"{path} has no question with id {unknown[0]!r} ({len(unknown)} ids of {predictions_path} "
                         "are not in it); give the validation file the runs were evaluated on")
    return questions


def compare_folders(path_a, path_b, names, validation_file=None):
    """The comparison of two runs' eval_predictions.json (see compare_squad)."""
    a, b = read_squad(path_a), read_squad(path_b)
    check_same_questions(a, b, path_a, path_b)
    questions = squad_questions(validation_file, a, path_a) if validation_file else None
    return compare_squad(a, b, names, questions)
