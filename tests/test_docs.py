"""The docs name files and TSV columns exactly as the scripts write them. What is written is read off short real runs
of both scripts (SQuAD v2 too, for its no-answer files), never copied from the code: a renamed file or column in the
code, or a stale name in README.md or docs/*.md, fails here."""

import dataclasses
import re

import pytest

import compare_runs
import run_glue_sst2
import run_squad
from conftest import REPO_DIR, SAMPLE_DIR, run_main_in_process
from finetune.arguments import ModelArguments, TrainingArguments

DOCS = [REPO_DIR / "README.md", *sorted((REPO_DIR / "docs").glob("*.md"))]
# A file name the scripts write into --output_dir starts like these (the data files a user gives do not)
OUTPUT_NAME = re.compile(r"\b(?:(?:eval|predict|train|all)_[a-z_]+|disagreements)\.(?:json|tsv|html)\b")
BACKTICKED = re.compile(r"`([^`\n]+)`")
SHORT = ["--max_steps", 2, "--save_strategy", "no", "--do_train", "--do_eval", "--do_predict"]


class NoCapture:
    def readouterr(self):
        return type("Captured", (), {"out": "", "err": ""})()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """{file name: its TSV header's columns, or None} of everything short runs of both scripts write."""
    folder = tmp_path_factory.mktemp("docs")
    runs = [(run_glue_sst2, ["recipes/sst2/quickstart.yaml"]),
            (run_squad, ["recipes/squad/quickstart.yaml"]),
            (run_squad, ["recipes/squad/quickstart.yaml", "--version_2_with_negative", "--train_file",
                         SAMPLE_DIR / "squad_v2_train.json", "--validation_file", SAMPLE_DIR / "squad_v2_dev.json"]),
            (run_glue_sst2, ["recipes/sst2/quickstart.yaml", "--task_name", "custom", "--train_file",
                             SAMPLE_DIR / "pairs_train.jsonl", "--validation_file", SAMPLE_DIR / "pairs_dev.jsonl",
                             "--test_file", SAMPLE_DIR / "pairs_dev.jsonl"])]
    files = {name: None for name in compare_runs.OUTPUT_NAMES}
    for number, (module, args) in enumerate(runs):
        output_dir = folder / str(number)
        code, err = run_main_in_process(module, [*args, *SHORT, "--output_dir", output_dir], NoCapture())
        assert code == 0, err
        for path in output_dir.rglob("*"):
            if path.is_file():
                header = path.read_text(encoding="utf-8").split("\n", 1)[0] if path.suffix == ".tsv" else None
                files[path.name] = header.split("\t") if header else files.get(path.name)
    return files


def flag_names():
    types = (ModelArguments, run_glue_sst2.DataArguments, run_squad.DataArguments, TrainingArguments)
    return {field.name for dataclass in types for field in dataclasses.fields(dataclass)}


def doc_texts():
    return [(path.relative_to(REPO_DIR), path.read_text(encoding="utf-8")) for path in DOCS]


def test_the_docs_name_only_files_the_scripts_write(written):
    stale = [(str(doc), name) for doc, text in doc_texts() for name in OUTPUT_NAME.findall(text) if name not in written]
    assert stale == [], f"named in the docs, written by no run: {stale}"


def test_the_readme_names_every_result_file(written):
    readme = (REPO_DIR / "README.md").read_text(encoding="utf-8")
    missing = sorted(name for name in written if OUTPUT_NAME.fullmatch(name) and name not in readme
                     and name not in compare_runs.OUTPUT_NAMES)  # (compare_runs.py's own folder: docs/failures.md)
    assert missing == [], f"written by the scripts, missing from README.md's table of written files: {missing}"


def test_the_docs_name_tsv_columns_as_written(written):
    columns = {column for header in written.values() if header for column in header}
    first_words = {column.split("_")[0] for column in columns if "_" in column}
    not_columns = flag_names() | {name.rsplit(".", 1)[0] for name in written}
    stale = []
    for doc, text in doc_texts():
        for word in BACKTICKED.findall(text):
            # a multi-word name that starts like a column (gold_..., predicted_..., context_...) and is no flag
            if re.fullmatch(r"[a-z]+(?:_[a-z0-9]+)+", word) and word.split("_")[0] in first_words \
                    and word not in not_columns and word not in columns:
                stale.append((str(doc), word))
        # a list of columns right after a file's name: `predict_results.tsv` (`index`, `prediction`, ...)
        for name, listed in re.findall(r"`([\w.]+\.tsv)` \(((?:`\w+`(?:, )?)+)", text):
            header = written.get(name) or []
            stale += [(str(doc), f"{name}: {column}") for column in BACKTICKED.findall(listed) if column not in header]
    assert stale == [], f"column names in the docs that no TSV file has: {stale}"
