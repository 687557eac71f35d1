"""TSV reports opened in a spreadsheet: a text cell the spreadsheet would evaluate as a formula (=, +, -, @ first, also
after spaces or a tab) is written with a leading apostrophe; numbers are written as they are; compare_runs.py reads
the texts back exactly."""

import datasets
import numpy as np
import pytest

from finetune.data import tsv_cell, tsv_value
from finetune.qa_report import failure_tsv
from finetune.tasks import classification_reports as reports
from finetune.tasks.qa_compare import compare_squad
from finetune.tasks.text_classification import glue_task, own_task

FORMULAS = ["=HYPERLINK(\"http://example.com\",\"click\")", "+1+2", "-2+3+cmd|' /C calc'!A0", "@SUM(A1:A2)",
            "   =1+1", "\t=1+1", "\r@x", "'=already quoted"]
PLAIN = ["a fine film", "- ", "it's good", "1 + 1", "email@example.com", "'quoted", "-0.5", "+3", "1e-3", "-"]


@pytest.mark.parametrize("text", FORMULAS)
def test_formula_cells_get_a_leading_apostrophe_and_read_back(text):
    cell = tsv_cell(text)
    assert cell.startswith("'") and "\t" not in cell and "\r" not in cell
    assert tsv_value(cell) == text.replace("\t", " ").replace("\r", " ")  # (a tab or line break inside: a space)


@pytest.mark.parametrize("text", PLAIN[:6])
def test_other_text_is_written_as_it_is(text):
    assert tsv_cell(text) == text and tsv_value(text) == text


@pytest.mark.parametrize("value", ["-0.5", "+3", "1e-3", "-", -0.5, np.float32(-1.5), np.int64(-3), 7])
def test_numbers_stay_numbers(value):
    """A negative number is not a formula: a spreadsheet must still sum a column of them."""
    assert tsv_cell(value) == str(value) and not tsv_cell(value).startswith("'")


def evaluated_rows(texts, logits, task, labels):
    dataset = datasets.Dataset.from_dict({"sentence": texts, "label": labels})
    files, _ = reports.evaluation_reports(dataset, np.asarray(logits), task, "test")
    return files


def test_classification_reports_quote_formula_texts_and_compare_runs_reads_them_back(tmp_path):
    texts = FORMULAS + PLAIN
    labels = np.arange(len(texts)) % 2
    logits = np.stack([labels, 1 - labels], axis=1).astype(float)  # every prediction wrong: all in the failures
    files = evaluated_rows(texts, logits, glue_task("sst2"), labels)
    for name in ("eval_predictions.tsv", "eval_failures.tsv"):
        cells = [line.split("\t")[-1] for line in files[name].splitlines()[1:]]
        assert sorted(cells) == sorted(tsv_cell(text) for text in texts)
        assert len([cell for cell in cells if cell.startswith("'")]) == len(FORMULAS) + 1  # (+ "'quoted")
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "eval_predictions.tsv").write_text(files["eval_predictions.tsv"])
    predictions = reports.read_predictions(tmp_path / "a" / "eval_predictions.tsv")
    assert [predictions[i]["sentence"] for i in range(len(texts))] == [t.replace("\t", " ").replace("\r", " ")
                                                                      for t in texts]
    comparison = reports.compare_folders(tmp_path / "a" / "eval_predictions.tsv",
                                         tmp_path / "b" / "eval_predictions.tsv", ("a", "b"))
    assert comparison["rows"] == []  # the same run twice: read back identically


def test_a_regressions_negative_errors_stay_numbers():
    texts = ["=1+1", "a calm day", "-ish"]
    files = evaluated_rows(texts, [[0.5], [3.0], [1.0]], own_task(None), [1.0, 2.5, 1.0])
    rows = [dict(zip(*(line.split("\t") for line in (files["eval_predictions.tsv"].splitlines()[0], row))))
            for row in files["eval_predictions.tsv"].splitlines()[1:]]
    assert [row["error"] for row in rows] == ["-0.5000", "0.5000", "0.0000"]
    assert [row["sentence"] for row in rows] == ["'=1+1", "a calm day", "'-ish"]


def test_squad_reports_quote_formula_texts_and_keep_numbers():
    row = {"id": "=id", "f1": 0.5, "kind": "partial", "question": "@who?", "gold": "-1 degrees", "predicted": "+1",
           "gold_start_char": 12, "gold_tokens": "3-5", "gold_in_windows": "1",
           "predicted_window": "1 of 1 (tokens 0-9)", "context_tokens": 10, "context": "=cmd|' /C calc'!A0 and more"}
    header, line = failure_tsv([row]).splitlines()
    cells = dict(zip(header.split("\t"), line.split("\t")))
    assert cells["id"] == "'=id" and cells["question"] == "'@who?" and cells["gold"] == "'-1 degrees"
    assert cells["predicted"] == "+1" and cells["f1"] == "0.5" and cells["gold_start_char"] == "12"
    assert cells["context"] == "'=cmd|' /C calc'!A0 and more"
    compared = compare_squad({"=q1": "+a", "q2": "same"}, {"=q1": "b", "q2": "same"}, ("a", "b"))
    assert compared["tsv"].splitlines()[1] == "'=q1\t'+a\tb"
