"""The question-answering pipeline (utils_qa.qa_pipeline, and the copy of utils_qa.py every trained model folder
carries): the same answers as run_squad.py's evaluation, offsets into the given context, a no-answer threshold
stored with a v2 model, one clear error for bad input, and pipeline(..., trust_remote_code=True) from the Hub in a
process that cannot import this repository."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO_DIR, SAMPLE_DIR, run_main_in_process
from hub_server import HubServer

import run_squad
import utils_qa
from finetune.cli import InputError
from finetune.data import load_squad_file
from utils_qa import qa_pipeline

QUICKSTART = REPO_DIR / "recipes/squad/quickstart.yaml"
WINDOWS = {"max_seq_len": 64, "doc_stride": 16, "max_question_len": 16}  # the quickstart's windows


@pytest.fixture(scope="module")
def squad_model(tmp_path_factory):
    """A briefly trained quickstart model with its evaluation's eval_predictions.json."""
    out = tmp_path_factory.mktemp("qa") / "squad"
    code, err = run_main_in_process(run_squad, [QUICKSTART, "--num_train_epochs", 3, "--do_predict", "false",
                                                "--output_dir", out], _Capture())
    assert code == 0, err
    return out


class _Capture:
    """run_main_in_process reads the captured output once; a module fixture has no capsys."""

    def readouterr(self):
        return type("Captured", (), {"out": "", "err": ""})()


def dev_records():
    return load_squad_file(SAMPLE_DIR / "squad_dev.json")


def test_answers_equal_the_evaluations_and_do_not_depend_on_batching(squad_model):
    records = dev_records()
    questions, contexts = [r["question"] for r in records], [r["context"] for r in records]
    evaluated = json.loads((squad_model / "eval_predictions.json").read_text())
    qa = qa_pipeline(squad_model, dtype="float32", **WINDOWS)  # as the quickstart recipe evaluated, on every CPU
    for batch_size in (1, 7, 64):
        answers = qa(question=questions, context=contexts, batch_size=batch_size)
        assert {r["id"]: a["answer"] for r, a in zip(records, answers)} == evaluated, batch_size
    assert all(set(a) == {"score", "start", "end", "answer"} and c[a["start"]:a["end"]] == a["answer"]
               for a, c in zip(answers, contexts))
    # one question and a string in, one answer out; top_k gives a ranked list whose first is that answer
    single = qa(question=questions[0], context=contexts[0])
    assert single["answer"] == evaluated[records[0]["id"]]
    ranked = qa(question=questions[0], context=contexts[0], top_k=3)
    assert len(ranked) == 3 and ranked[0] == single and len({(a["start"], a["end"]) for a in ranked}) == 3


def test_a_long_context_is_answered_over_all_its_windows(squad_model):
    """A context far longer than the model's 512 positions: every window is read, every offset is right."""
    records = dev_records()
    context = "\n\n".join(dict.fromkeys(r["context"] for r in records)) * 2
    qa = qa_pipeline(squad_model, **WINDOWS)
    features = qa.preprocess({"question": [records[0]["question"]], "context": [context]}, **WINDOWS)["features"]
    assert len(qa.tokenizer(context)["input_ids"]) > 512 and len(features["input_ids"]) > 30
    for answer in qa(question=records[0]["question"], context=context, top_k=5):
        assert context[answer["start"]:answer["end"]] == answer["answer"] and answer["answer"]


@pytest.mark.parametrize("context", [
    "Café Müller opened in Zürich in 1898; its owner, Zoë Brontë, served crème brûlée.",
    "Marlow   lies\n\non the\triver  Tess,\u00a0north of the old bridge.\n",
    "東京 is the capital. 🚆 Trains leave Marlow hourly for the river Tess.",
])
def test_unicode_and_whitespace_keep_offsets_exact(squad_model, context):
    qa = qa_pipeline(squad_model, **WINDOWS)
    for answer in qa(question="Where is it?", context=context, top_k=5):
        assert context[answer["start"]:answer["end"]] == answer["answer"]


def test_bad_input_is_one_clear_error(squad_model, tmp_path):
    qa = qa_pipeline(squad_model, **WINDOWS)
    with pytest.raises(InputError, match="question 0 is empty"):
        qa(question="  ", context="Marlow lies on the river Tess.")
    with pytest.raises(InputError, match="context 1 is empty"):
        qa(question=["Which river?", "Where?"], context=["Marlow lies on the river Tess.", ""])
    with pytest.raises(InputError, match="2 questions for 3 contexts"):
        qa(question=["a?", "b?"], context=["x", "y", "z"])
    with pytest.raises(InputError, match="above the model's limit of 512"):
        qa(question="a?", context="x", max_seq_len=1024)
    # a classifier folder (the SST-2 script's kind) has no question-answering head
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    classifier = tmp_path / "sst2"
    AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(REPO_DIR / "assets/tiny-bert")) \
        .save_pretrained(classifier)
    AutoTokenizer.from_pretrained(REPO_DIR / "assets/tiny-bert").save_pretrained(classifier)
    with pytest.raises(InputError, match="is a BertForSequenceClassification, not a question-answering model"):
        qa_pipeline(classifier)
    with pytest.raises(InputError, match="could not load the model"):
        qa_pipeline(tmp_path / "missing")


@pytest.mark.parametrize("dtype, native, computes_in", [
    ("float32", True, None), ("bfloat16", False, torch.bfloat16), (torch.bfloat16, False, torch.bfloat16),
    ("auto", True, torch.bfloat16), ("auto", False, None),
])
def test_dtype_chooses_what_the_model_computes_in(squad_model, monkeypatch, dtype, native, computes_in):
    """float32 or bf16 autocast as asked; "auto" takes bf16 only where the device computes it natively (stood in
    for: the test must not depend on this CPU). Every forward pass runs under the chosen autocast, and the answers
    stay spans of the context."""
    monkeypatch.setattr(utils_qa, "native_bf16", lambda device: native)
    qa = qa_pipeline(squad_model, dtype=dtype, **WINDOWS)
    assert qa.autocast_dtype == computes_in
    seen = []
    forward = qa.model.forward
    monkeypatch.setattr(qa.model, "forward", lambda *a, **k: seen.append(
        torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu")) or forward(*a, **k))
    records = dev_records()[:6]
    answers = qa(question=[r["question"] for r in records], context=[r["context"] for r in records], batch_size=4)
    assert len(seen) >= 2 and set(seen) == {computes_in or False}  # every batch of windows
    assert all(r["context"][a["start"]:a["end"]] == a["answer"] for r, a in zip(records, answers))


def test_dtype_is_checked_and_taken_from_the_standard_pipeline(squad_model, capsys):
    from transformers import pipeline

    with pytest.raises(InputError, match="dtype 'float8' is not one of auto, float32, bfloat16"):
        qa_pipeline(squad_model, dtype="float8")
    with pytest.raises(SystemExit) as stop:
        utils_qa.main([str(squad_model), "Which river?", "--context", "Marlow lies on the Tess.", "--dtype", "int8"])
    assert stop.value.code == 2 and "--dtype: invalid choice" in capsys.readouterr().err
    # pipeline(..., dtype=) loads the weights in that dtype and hands it on to this file's pipeline class
    qa = pipeline("question-answering", model=str(squad_model), trust_remote_code=True, dtype="bfloat16")
    assert isinstance(qa, utils_qa.QuestionAnsweringPipeline) or type(qa).__name__ == "QuestionAnsweringPipeline"
    assert qa.model.dtype == torch.bfloat16 and qa.autocast_dtype == torch.bfloat16
    answer = qa(question="Which river?", context="Marlow lies on the river Tess.", **WINDOWS)
    assert "Marlow lies on the river Tess."[answer["start"]:answer["end"]] == answer["answer"]


def test_the_shell_command_prints_ranked_answers_or_one_error_line(squad_model, tmp_path, capsys):
    text_file = tmp_path / "context.txt"
    text_file.write_text("Marlow lies on the river Tess.\n" * 80, encoding="utf-8")  # more than 512 tokens
    utils_qa.main([str(squad_model), "Which river?", "--context_file", str(text_file), "--top_k", "2",
                   "--max_seq_len", "64", "--doc_stride", "16", "--max_question_len", "16"])
    printed = capsys.readouterr()
    lines = printed.out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("1. ") and "(score " in lines[0]
    assert "Loading weights" not in printed.err  # the answers, and nothing else
    with pytest.raises(SystemExit) as stop:
        utils_qa.main([str(squad_model), "Which river?", "--context_file", str(tmp_path / "none.txt")])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {tmp_path / 'none.txt'}: cannot read it")


def test_v2_threshold_is_stored_with_the_model_used_by_default_and_never_overwritten(tmp_path, capsys):
    v2 = ["--version_2_with_negative", "true", "--train_file", SAMPLE_DIR / "squad_v2_train.json",
          "--validation_file", SAMPLE_DIR / "squad_v2_dev.json", "--do_predict", "false"]
    code, err = run_main_in_process(run_squad, [QUICKSTART, *v2, "--num_train_epochs", 3, "--output_dir",
                                                tmp_path / "train"], capsys)
    assert code == 0, err
    config = json.loads((tmp_path / "train/config.json").read_text())
    stored = config[run_squad.NULL_THRESHOLD]
    trained = json.loads((tmp_path / "train/eval_results.json").read_text())
    assert f"No-answer threshold: {stored!r}" in (tmp_path / "train/README.md").read_text()

    # an evaluation of that model uses the stored threshold (so its F1 is the best one) and changes no config
    evaluate_only = [QUICKSTART, *v2, "--do_train", "false", "--model_name_or_path", tmp_path / "train"]
    code, err = run_main_in_process(run_squad, [*evaluate_only, "--output_dir", tmp_path / "eval"], capsys)
    assert code == 0, err
    evaluated = json.loads((tmp_path / "eval/eval_results.json").read_text())
    assert evaluated["eval_f1"] == pytest.approx(trained["eval_best_f1"])
    assert json.loads((tmp_path / "train/config.json").read_text()) == config
    assert not (tmp_path / "eval/config.json").exists()

    # the pipeline too, unless told otherwise
    predictions = json.loads((tmp_path / "eval/eval_predictions.json").read_text())
    records = load_squad_file(SAMPLE_DIR / "squad_v2_dev.json", version_2_with_negative=True)
    qa = qa_pipeline(tmp_path / "train", **WINDOWS)
    answers = qa(question=[r["question"] for r in records], context=[r["context"] for r in records])
    assert {r["id"]: a["answer"] for r, a in zip(records, answers)} == predictions
    assert "" in predictions.values()
    never_empty = qa(question=[r["question"] for r in records], context=[r["context"] for r in records],
                     handle_impossible_answer=False)
    assert all(a["answer"] for a in never_empty)

    # a flag still decides: a threshold above every null odds answers every question
    code, err = run_main_in_process(run_squad, [*evaluate_only, "--null_score_diff_threshold", 1e9, "--output_dir",
                                                tmp_path / "flag"], capsys)
    assert code == 0, err
    assert "" not in json.loads((tmp_path / "flag/eval_predictions.json").read_text()).values()


CLEAN_PROCESS = """
import json, sys
for name in ("utils_qa", "finetune"):
    try:
        __import__(name)
        sys.exit(name + " is importable here")
    except ImportError:
        pass
from huggingface_hub import HfApi
HfApi().create_repo("testuser/squad-qa")
HfApi().upload_folder(repo_id="testuser/squad-qa", folder_path={folder!r})
from transformers import pipeline
qa = pipeline("question-answering", model={repo_id!r}, trust_remote_code=True, max_seq_len=64, doc_stride=16,
              max_question_len=16)
print(json.dumps(qa(question={questions!r}, context={contexts!r})))
"""


def test_pipeline_from_the_hub_with_only_transformers(squad_model, tmp_path):
    """The model folder carries utils_qa.py and names it in config.json: a process that cannot import this
    repository uploads the folder to the Hub server, loads the pipeline by Hub name and gives the same answers.
    (A fresh process: HF_ENDPOINT is read when huggingface_hub is imported.)"""
    records = dev_records()[:12]
    questions, contexts = [r["question"] for r in records], [r["context"] for r in records]
    assert (squad_model / "utils_qa.py").read_text() == (REPO_DIR / "utils_qa.py").read_text()
    with HubServer() as hub:
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "home"), HF_TOKEN=hub.token)
        code = CLEAN_PROCESS.format(repo_id="testuser/squad-qa", folder=str(squad_model), questions=questions,
                                    contexts=contexts)
        result = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    local = qa_pipeline(squad_model, **WINDOWS)(question=questions, context=contexts)
    assert [a["answer"] for a in remote] == [a["answer"] for a in local]
    assert [(a["start"], a["end"]) for a in remote] == [(a["start"], a["end"]) for a in local]
