"""Text classification's per-example files: eval_predictions.tsv (every evaluated example), eval_failures.tsv and
.html (the mistakes, most confident first; a regression's examples, largest error first), predict_results.tsv, and
where two runs' eval_predictions.tsv disagree (compare_runs.py). A pair's second text is a column of its own."""

import json
from pathlib import Path

import numpy as np

from finetune.errors import InputError
from finetune.metric_arrays import regression_metric
from finetune.stats import compare_classification, paired_comparison
from finetune.tasks.classification_metrics import REGRESSION_METRICS, f1_average
from finetune.data import read_records, tsv_cell, tsv_value
from finetune.report import failure_page

PREDICTIONS_FILE = "eval_predictions.tsv"
# The files that quote the data, for the upload filter and the output-folder rules (MNLI's mismatched set: *_mm)
PER_EXAMPLE_FILES = ("eval_failures*.tsv", "eval_failures*.html", "eval_predictions*.tsv", "predict_results*.tsv")
TEXT_HEADERS = ("sentence", "sentence_pair")
RERUN = "it is written by an evaluation (--do_eval): evaluate the run again, or fix that row"


def softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def texts_of(dataset):
    """Each example's texts as a tuple: (sentence,) or (sentence, sentence_pair)."""
    columns = [dataset[name] for name in TEXT_HEADERS if name in dataset.column_names]
    return list(zip(*columns))


def example_rows(texts, logits, task, gold=None):
    """One dict per example: index, gold (if known), predicted, probability of the predicted label (a regression: its
    error, predicted - gold), and the texts."""
    rows = []
    if task.regression:
        predicted = np.asarray(logits, dtype=float).reshape(-1)
        for i, text in enumerate(texts):
            row = {"index": i, "predicted": round(float(predicted[i]), 4)}
            if gold is not None:
                row.update(gold=float(gold[i]), error=round(float(predicted[i] - gold[i]), 4))
            rows.append({**row, **dict(zip(TEXT_HEADERS, text))})
        return rows
    probabilities = softmax(np.asarray(logits, dtype=float))
    names = task.label_names
    for i, (text, p) in enumerate(zip(texts, probabilities)):
        row = {"index": i, "predicted": names[p.argmax()], "probability": round(float(p.max()), 4)}
        if gold is not None:
            row["gold"] = names[gold[i]]
        rows.append({**row, **dict(zip(TEXT_HEADERS, text))})
    return rows


def mistakes(rows, regression):
    """Misclassified rows, the most confident first; a regression's rows, the largest error first."""
    if regression:
        return sorted(rows, key=lambda r: -abs(r["error"]))
    return sorted((r for r in rows if r["predicted"] != r["gold"]), key=lambda r: -r["probability"])


def tsv_text(rows, columns):
    def cell(value):
        return f"{value:.4f}" if isinstance(value, float) else tsv_cell(value)

    return "\n".join(["\t".join(columns)] + ["\t".join(cell(row[c]) for c in columns) for row in rows]) + "\n"


def report_columns(rows, task, gold=True):
    texts = [name for name in TEXT_HEADERS if rows and name in rows[0]] or ["sentence"]
    score = "error" if task.regression else "probability"
    return ["index", *(["gold"] if gold else []), "predicted", *([score] if gold or not task.regression else []),
            *texts]


def evaluation_reports(dataset, logits, task, title):
    """{file name: text} of eval_predictions.tsv, eval_failures.tsv and eval_failures.html, and the mistakes' count."""
    rows = example_rows(texts_of(dataset), logits, task, np.asarray(dataset["label"]))
    wrong = mistakes(rows, task.regression)
    columns = report_columns(rows, task)
    if task.regression:
        intro = (f"The {len(rows)} validation examples, the largest error (predicted - gold score) first.")
    else:
        intro = (f"{len(wrong)} of {len(rows)} validation examples are misclassified (accuracy "
                 f"{1 - len(wrong) / max(len(rows), 1):.4f}); the most confident mistakes come first. "
                 "Confidence is the probability the model gave its (wrong) prediction.")
    page_columns = [("confidence" if c == "probability" else c, c.replace("_", " ")) for c in columns]
    page_rows = [{("confidence" if k == "probability" else k): v for k, v in row.items()} for row in wrong]
    kind = "examples by error" if task.regression else "misclassified validation examples"
    page = failure_page(f"{title}: {kind}", intro, page_columns, page_rows)
    return {"eval_predictions.tsv": tsv_text(rows, columns), "eval_failures.tsv": tsv_text(wrong, columns),
            "eval_failures.html": page}, len(wrong)


def prediction_report(dataset, logits, task):
    """predict_results.tsv: index, prediction, its probability (not for a regression), the texts."""
    rows = [{**row, "prediction": row["predicted"]} for row in example_rows(texts_of(dataset), logits, task)]
    columns = [c if c != "predicted" else "prediction" for c in report_columns(rows, task, gold=False)]
    return tsv_text(rows, columns)


# ---- Comparing two runs (compare_runs.py)


def read_predictions(path):
    """{index: row} of an eval_predictions.tsv, every row checked; numbers as floats."""
    rows = read_records(path, flag="a predictions file")
    regression = "error" in rows[0]
    expected = ["index", "gold", "predicted", "error" if regression else "probability", "sentence"]
    missing = [name for name in expected if name not in rows[0]]
    if missing:
        columns = ", ".join(c for c in rows[0] if c != "_row")
        raise InputError(f"{path}: no column(s) {', '.join(missing)} (columns: {columns}); expected "
                         f"{', '.join(expected)}: {RERUN}")
    predictions = {}
    for row in rows:
        row = {column: value if column == "_row" else tsv_value(value) for column, value in row.items()}
        where = f"{path}, {row['_row']}"
        if not row["index"].isascii() or not row["index"].isdigit():
            raise InputError(f"{where}: index {row['index']!r} is not a whole number; {RERUN}")
        index = int(row["index"])
        if index in predictions:
            raise InputError(f"{where}: index {index} appears twice (first at {predictions[index]['_row']}); {RERUN}")
        for column in ("gold", "predicted") if regression else ("probability",):
            row[column] = checked_number(row[column], column, where)
        predictions[index] = row
    return predictions


def checked_number(text, column, where):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if column == "probability" and not 0 <= value <= 1:  # (NaN fails the comparison too)
        raise InputError(f"{where}: probability {text!r} is not a number from 0 to 1; {RERUN}")
    if not np.isfinite(value):
        raise InputError(f"{where}: {column} {text!r} is not a number; {RERUN}")
    return value


def check_same_examples(a, b, path_a, path_b):
    if a.keys() != b.keys():
        raise InputError(f"{path_a} holds {len(a)} sentences and {path_b} {len(b)}"
                         f"{' with other indices' if len(a) == len(b) else ''}: the runs were evaluated on different "
                         "validation data (or --max_eval_samples); compare runs evaluated on the same sentences")
    for index, row in a.items():
        other = b[index]
        for column in ("sentence", "sentence_pair", "gold"):
            if row.get(column) != other.get(column):
                raise InputError(f"index {index}: the {column} at {path_a}, {row['_row']} differs from the one at "
                                 f"{path_b}, {other['_row']}: the runs were evaluated on different validation data; "
                                 "compare runs evaluated on the same sentences")


COMPARISON_HEADERS = ("index\tgold\tA_predicted\t",)  # how compare_runs.py knows a disagreements.tsv of its own


def compare(a, b, names):
    """{title, rows, columns: [(key, heading)], tsv, summary} of the examples two runs predict differently (a
    regression: every example, the largest difference first)."""
    regression = "error" in next(iter(a.values()))
    score = "error" if regression else "probability"
    texts = [name for name in TEXT_HEADERS if name in next(iter(a.values()))]
    rows = []
    for index, row in sorted(a.items()):
        other = b[index]
        if regression or row["predicted"] != other["predicted"]:
            if regression:
                right = "A" if abs(row["error"]) < abs(other["error"]) else "B" if abs(other["error"]) < abs(
                    row["error"]) else "same"
            else:
                right = ("A" if row["predicted"] == row["gold"] else "B" if other["predicted"] == row["gold"]
                         else "neither")
            rows.append({"index": index, "gold": row["gold"], "a": row["predicted"], "a_score": row[score],
                         "b": other["predicted"], "b_score": other[score], "right": right,
                         **{name: row[name] for name in texts}})
    if regression:
        rows.sort(key=lambda r: -abs(r["a"] - r["b"]))
    columns = [("index", "index"), ("gold", "gold"), ("a", "A_predicted"), ("a_score", f"A_{score}"),
               ("b", "B_predicted"), ("b_score", f"B_{score}"), ("right", "closer" if regression else "right"),
               *((name, name) for name in texts)]
    tsv = tsv_text(rows, [key for key, _ in columns]).split("\n", 1)[1]
    tsv = "\t".join(heading for _, heading in columns) + "\n" + tsv
    if regression:
        summary = [f"Compared {len(a)} examples: the largest difference between A's and B's scores first."]
    else:
        accuracy = [sum(p["predicted"] == p["gold"] for p in run.values()) / len(run) for run in (a, b)]
        summary = [f"Compared {len(a)} sentences: A and B disagree on {len(rows)}.",
                   f"Accuracy on all of them: A {accuracy[0]:.4f}, B {accuracy[1]:.4f}.",
                   (f"Where they disagree, A is right on {sum(r['right'] == 'A' for r in rows)} and B on "
                    f"{sum(r['right'] == 'B' for r in rows)}.")]
    page_columns = [(key, heading.replace("_", " ")) for key, heading in columns]
    return {"title": f"Where {names[0]} and {names[1]} {'differ' if regression else 'disagree'}", "rows": rows,
            "columns": page_columns, "tsv": tsv, "summary": summary}


def compare_folders(path_a, path_b, names, validation_file=None):
    """The comparison of two runs' eval_predictions.tsv (the file holds the texts and gold labels: validation_file
    is not needed)."""
    a, b = read_predictions(path_a), read_predictions(path_b)
    check_same_examples(a, b, path_a, path_b)
    return {**compare(a, b, names), "statistics": statistics(a, b, label_order(path_a.parent))}


def label_order(folder):
    """The label names in id order from the run's config.json (binary F1 is class 1's), or None."""
    try:
        id2label = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("id2label") or {}
        return [id2label[key] for key in sorted(id2label, key=int)]
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def statistics(a, b, names=None):
    """{metric: the paired comparison of B against A} over the same examples: accuracy with McNemar's exact test, F1
    (and a regression's correlations) with a paired permutation test."""
    indices = sorted(a)
    if "error" in a[indices[0]]:
        gold = np.array([a[i]["gold"] for i in indices])
        predicted = [np.array([run[i]["predicted"] for i in indices]) for run in (a, b)]
        return paired_comparison(regression_metric(REGRESSION_METRICS), [gold], [predicted[0]], [predicted[1]])
    seen = sorted({run[i][column] for run in (a, b) for i in indices for column in ("gold", "predicted")})
    names = names if names and set(seen) <= set(names) else seen
    ids = {name: i for i, name in enumerate(names)}
    gold = np.array([ids[a[i]["gold"]] for i in indices])
    predicted_a, predicted_b = (np.array([ids[run[i]["predicted"]] for i in indices]) for run in (a, b))
    return compare_classification(gold, predicted_a, predicted_b, ("accuracy", "f1"), max(len(names), 2),
                                  f1_average(max(len(names), 2)))
