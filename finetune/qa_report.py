"""What a SQuAD evaluation got wrong, question by question: eval_failures.tsv and eval_failures.html.

Positions are those of the context tokenized alone (no special tokens), the tokens the windows are cut from, so
"the answer starts at token 300 and no window holds all of it" can be read straight off a row.
"""

import bisect
import importlib.util

import numpy as np

from finetune.data import REPO_DIR, tsv_cell
from finetune.report import failure_page
from finetune.stats import interval_metrics, score_intervals
from utils_qa import ContextOffsets, column

COLUMNS = [  # (key, heading) of the TSV and the page, in order
    ("id", "id"), ("f1", "F1"), ("kind", "kind"), ("question", "question"), ("gold", "gold"),
    ("predicted", "predicted"), ("gold_start_char", "gold char"), ("gold_tokens", "gold tokens"),
    ("gold_in_windows", "windows with gold"), ("predicted_window", "prediction's window"),
    ("context_tokens", "context tokens"),
]
SCORES = ("exact_match", "f1", "exact", "best_f1")
METRICS = ("exact_match", "f1")  # the metrics the page's introduction quotes


def squad_scoring(version_2=False):
    """The pure scoring functions of metrics/squad (or squad_v2): normalize_answer, f1_score, ..., for scoring
    single questions (the evaluate module scores whole sets)."""
    name = "squad_v2" if version_2 else "squad"
    spec = importlib.util.spec_from_file_location(f"{name}_metric", REPO_DIR / "metrics" / name / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def question_scores(examples, answers, version_2=False):
    """{metric: each question's score (0-100), in the order of examples (a Dataset or a list of records)}, scored
    as metrics/squad (exact_match, f1) or metrics/squad_v2 (exact, f1; the evaluation leaves its no-answer
    threshold at 1, which changes no answer)."""
    scoring = squad_scoring(version_2)
    golds = {qid: answer["text"] for qid, answer in zip(column(examples, "id"), column(examples, "answers"))}
    if version_2:
        exact, f1 = scoring.raw_scores(answers, golds)
        pairs, names = [(exact[qid], f1[qid]) for qid in golds], ("exact", "f1")
    else:
        pairs, names = [scoring.question_scores(answers[qid], texts) for qid, texts in golds.items()], METRICS
    scores = 100.0 * np.array(pairs, dtype=float).reshape(-1, 2)
    return {name: scores[:, i] for i, name in enumerate(names)}


def squad_intervals(examples, answers, version_2=False, prefix="eval"):
    """The 95% bootstrap intervals (over questions) of the evaluation's headline metrics, as eval_results.json keys
    (eval_f1_ci_low, ...); for v2 also those of the questions with and without an answer (HasAns_f1, ...)."""
    scores = question_scores(examples, answers, version_2)
    intervals = score_intervals(scores)
    if version_2:
        answerable = np.array([bool(answer["text"]) for answer in column(examples, "answers")])
        for group, rows in (("HasAns_", answerable), ("NoAns_", ~answerable)):
            if rows.any():
                intervals.update({group + name: interval for name, interval in score_intervals(
                    {name: values[rows] for name, values in scores.items()}).items()})
    return interval_metrics(intervals, prefix)


def failure_rows(examples, features, answers, spans, tokenizer, f1_score):
    """One dict per question scoring F1 < 1 (the best over its gold answers), worst first, then in dataset order:
    id, f1 (0-1), kind ("miss" at F1 0, else "partial"), gold (all gold answers), predicted; for the first gold
    answer its start character and its tokens "first-last", and the windows (numbered from 1) that hold all of it
    ("none"; "-" for a question without answer); the window the prediction came from, "k of n (tokens a-b)";
    the context's length in tokens; question; context; spans (gold and predicted characters, for the page).
    spans is postprocess_qa_predictions' return_spans."""
    feature_ids = column(features, "example_id")
    windows_of = {}
    for feature, qid in enumerate(feature_ids):
        windows_of.setdefault(qid, []).append(feature)
    failing = []
    for example in examples:
        golds = example["answers"]["text"] or [""]
        predicted = answers[example["id"]]
        f1 = max(f1_score(predicted, gold) for gold in golds)
        if f1 < 1:
            failing.append((f1, example))
    failing.sort(key=lambda pair: pair[0])  # stable: dataset order among equal scores
    offsets = ContextOffsets(features) if failing else None
    token_starts = context_token_starts([example["context"] for _, example in failing], tokenizer)
    rows = []
    for f1, example in failing:
        qid, context = example["id"], example["context"]
        starts = token_starts[context]
        ranges = [window_range(offsets, feature, starts) for feature in windows_of[qid]]
        answer_starts, gold_texts = example["answers"]["answer_start"], example["answers"]["text"]
        row = {"id": qid, "f1": round(float(f1), 3), "kind": "miss" if f1 == 0 else "partial",
               "gold": " | ".join(gold_texts) or "(no answer)", "predicted": answers[qid] or "(no answer)",
               "gold_start_char": "-", "gold_tokens": "-", "gold_in_windows": "-", "context_tokens": len(starts),
               "question": example["question"], "context": context, "spans": []}
        if answer_starts:
            begin, end = answer_starts[0], answer_starts[0] + len(gold_texts[0])
            first_token = bisect.bisect_right(starts, begin) - 1
            last_token = max(bisect.bisect_left(starts, end) - 1, first_token)
            holding = [str(n) for n, (a, b, first, last) in enumerate(ranges, 1) if first <= begin and last >= end]
            row.update(gold_start_char=begin, gold_tokens=f"{first_token}-{last_token}",
                       gold_in_windows=",".join(holding) or "none")
            row["spans"].append([begin, end, "gold"])
        feature, first_char, last_char = spans[qid]
        number = windows_of[qid].index(feature)
        a, b = ranges[number][:2]
        row["predicted_window"] = f"{number + 1} of {len(ranges)} (tokens {a}-{b})"
        if first_char is not None:
            row["spans"].append([first_char, last_char, "predicted"])
        rows.append(row)
    return rows


def context_token_starts(contexts, tokenizer):
    """{context: start character of each of its tokens}, each distinct context tokenized once."""
    distinct = list(dict.fromkeys(contexts))
    if not distinct:
        return {}
    encoded = tokenizer(distinct, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return {context: [start for start, _ in offsets] for context, offsets in zip(distinct, encoded["offset_mapping"])}


def window_range(offsets, feature, token_starts):
    """(first token, last token, first character, end character) of one window's context, in the context."""
    begin = offsets.first_token[feature]
    chars = offsets.start_char[begin:begin + offsets.lengths[feature]]
    inside = np.flatnonzero(chars >= 0)
    if not len(inside):  # a context that tokenizes to nothing
        return 0, -1, 0, 0
    first_char = int(chars[inside[0]])
    last_end = int(offsets.end_char[begin + inside[-1]])
    first = bisect.bisect_left(token_starts, first_char)
    return first, first + len(inside) - 1, first_char, last_end


def failure_tsv(rows):
    """The rows as TSV text: COLUMNS, then the context."""
    lines = ["\t".join(key for key, _ in COLUMNS) + "\tcontext"]
    lines += ["\t".join(tsv_cell(row[key]) for key, _ in COLUMNS) + "\t" + tsv_cell(row["context"])
              for row in rows]
    return "\n".join(lines) + "\n"


def failure_html(rows, metrics, questions):
    """eval_failures.html: every row with its context, the gold and predicted spans highlighted."""
    scores = ", ".join(f"{key} {metrics[f'eval_{key}']:.2f}" for key in SCORES if f"eval_{key}" in metrics)
    intro = (f"{len(rows)} of {questions} questions score F1 below 1 ({scores}), worst first. Token positions "
             "count the context's own tokens; a window is one slice of the context the model reads at a time.")
    return failure_page("SQuAD evaluation: questions below F1 1", intro, COLUMNS, rows, text_key="context")
