"""Reliability of run_glue_sst2.py (and run_squad.py where the behaviour is shared): resume after kill -9, the
output-folder policy, atomic result files, tokens kept out of logs and files, argument-level bad input."""

import importlib.util
import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import (REPO_DIR, SAMPLE_DIR, TINY_MODEL, run_main_in_process, run_python, saved_tiny_model,
                      start_python)
from safetensors.torch import load_file

import finetune.arguments
import finetune.cli
import finetune.modeling
import finetune.outputs
import finetune.runs
import run_glue_sst2

# 600 training rows / batch 32 = 19 steps an epoch: resuming from checkpoint-16 crosses an epoch boundary, so both
# the skipped batches of the current epoch and the next epoch's shuffle must come out right.
RESUME_RUN = [*TINY_MODEL, "--train_file", SAMPLE_DIR / "sst2_train.tsv",
              "--validation_file", SAMPLE_DIR / "sst2_dev.tsv", "--do_train", "--do_eval",
              "--save_strategy", "steps", "--save_steps", 8, "--max_steps", 30,
              "--per_device_train_batch_size", 32, "--learning_rate", 1e-3, "--warmup_steps", 5, "--max_seq_length", 64,
              "--seed", 7, "--report_to", "none", "--disable_tqdm", "true"]
SHORT_RUN = [*TINY_MODEL, "--train_file", SAMPLE_DIR / "sst2_train.tsv", "--do_train", "--max_steps", 2,
             "--per_device_train_batch_size", 8, "--max_seq_length", 32, "--report_to", "none",
             "--disable_tqdm", "true"]

# Runs a script as `python SCRIPT ARGS` would, but stops (sleeps) in the middle of writing the checkpoint of step
# $HANG_AT_STEP: the model and optimizer are on disk, rng_state.pth and trainer_state.json are not. The test then
# kills it with SIGKILL, which leaves exactly what a crash while saving leaves.
HANG_WHILE_SAVING = """
import os, runpy, sys, time
import transformers
hang_at = int(os.environ["HANG_AT_STEP"])
save_rng_state = transformers.Trainer._save_rng_state
def hang(self, output_dir):
    if self.state.global_step == hang_at:
        print("HANGING WHILE SAVING", output_dir, flush=True)
        time.sleep(300)
    save_rng_state(self, output_dir)
transformers.Trainer._save_rng_state = hang
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_in_process(argv, capsys, module=run_glue_sst2):
    return run_main_in_process(module, argv, capsys)


def script_command(*args):
    """`python run_glue_sst2.py ARGS`, without the interpreter (conftest.run_python / start_python run it)."""
    return [REPO_DIR / "run_glue_sst2.py", *args]


def eval_results(output_dir):
    return json.loads((output_dir / "eval_results.json").read_text())


def assert_same_result(resumed, reference):
    """Same metrics and, stronger, the same final weights as the uninterrupted run."""
    got, want = eval_results(resumed), eval_results(reference)
    assert got["eval_accuracy"] == want["eval_accuracy"]
    assert got["eval_loss"] == pytest.approx(want["eval_loss"], abs=1e-6)
    got_weights, want_weights = load_file(resumed / "model.safetensors"), load_file(reference / "model.safetensors")
    assert got_weights.keys() == want_weights.keys()
    for name in want_weights:
        torch.testing.assert_close(got_weights[name], want_weights[name], rtol=0, atol=1e-6, msg=name)
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["global_step"] == 30


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("uninterrupted")
    run_glue_sst2.main([str(a) for a in RESUME_RUN + ["--output_dir", output_dir]])
    return output_dir


# ---- Resume


def test_kill_9_while_saving_then_the_same_command_resumes_to_the_same_result(uninterrupted_run, tmp_path):
    output_dir = tmp_path / "run"
    command = script_command(*RESUME_RUN, "--output_dir", output_dir)
    log = tmp_path / "killed.log"
    process = start_python("-c", HANG_WHILE_SAVING, *command, env={"HANG_AT_STEP": "24"}, stdout=log)
    try:
        deadline = time.time() + 120
        while "HANGING WHILE SAVING" not in log.read_text():
            assert process.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        assert finetune.runs.is_complete_checkpoint(output_dir / "checkpoint-16")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    # what the crash left: a complete checkpoint-16 and a half-written checkpoint-24, no final model
    assert (output_dir / "checkpoint-24" / "model.safetensors").exists()
    assert not (output_dir / "checkpoint-24" / "trainer_state.json").exists()
    assert not finetune.runs.is_complete_checkpoint(output_dir / "checkpoint-24")
    assert not (output_dir / "model.safetensors").exists()

    rerun = run_python(*command)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Skipping" in rerun.stderr and "checkpoint-24" in rerun.stderr
    assert f"Resuming from {output_dir / 'checkpoint-16'}" in rerun.stderr
    assert_same_result(output_dir, uninterrupted_run)
    assert finetune.runs.is_complete_checkpoint(output_dir / "checkpoint-24")  # rewritten in full this time


def test_resume_from_checkpoint_path_gives_the_same_result(uninterrupted_run, tmp_path, capsys):
    output_dir = tmp_path / "explicit"
    code, err = run_in_process([*RESUME_RUN, "--output_dir", output_dir,
                                "--resume_from_checkpoint", uninterrupted_run / "checkpoint-8"], capsys)
    assert code == 0, err
    assert_same_result(output_dir, uninterrupted_run)


def test_a_truncated_trainer_state_is_skipped_and_the_newest_complete_checkpoint_chosen(uninterrupted_run, tmp_path):
    output_dir = tmp_path / "copy"
    for step in (8, 16, 24):
        (output_dir / f"checkpoint-{step}").mkdir(parents=True)
        for file in (uninterrupted_run / f"checkpoint-{step}").iterdir():
            (output_dir / file.parent.name / file.name).symlink_to(file)
    state = output_dir / "checkpoint-24" / "trainer_state.json"
    text = state.read_text()
    state.unlink()
    state.write_text(text[: len(text) // 2])  # killed while writing trainer_state.json
    (output_dir / "checkpoint-16" / "model.safetensors").unlink()  # a checkpoint without weights is no checkpoint
    args = training_args(output_dir)
    assert finetune.runs.checkpoint_to_resume(args) == str(output_dir / "checkpoint-8")
    args = training_args(output_dir, "--resume_from_checkpoint", output_dir / "checkpoint-24")
    with pytest.raises(finetune.cli.InputError, match="not a complete checkpoint"):
        finetune.runs.checkpoint_to_resume(args)
    args = training_args(output_dir, "--resume_from_checkpoint", tmp_path / "nowhere")
    with pytest.raises(finetune.cli.InputError, match="no such folder"):
        finetune.runs.checkpoint_to_resume(args)


def test_a_run_killed_while_saving_its_first_checkpoint_starts_again(tmp_path):
    (tmp_path / "checkpoint-8").mkdir()
    (tmp_path / "checkpoint-8" / "config.json").write_text("{}")
    assert finetune.runs.checkpoint_to_resume(training_args(tmp_path)) is None


@pytest.mark.parametrize("half_written_checkpoint", [False, True])
def test_a_squad_run_killed_after_an_evaluation_before_its_first_checkpoint_starts_again(tmp_path,
                                                                                        half_written_checkpoint):
    """An evaluation during training writes eval_predictions.json (and n-best, v2: null odds) into --output_dir:
    the rerun of the same command must not take them for a user's files."""
    for name in ("eval_predictions.json", "eval_nbest_predictions.json", "eval_null_odds.json"):
        (tmp_path / name).write_text("{}")
    if half_written_checkpoint:
        (tmp_path / "checkpoint-15").mkdir()
    assert finetune.runs.checkpoint_to_resume(training_args(tmp_path)) is None
    (tmp_path / "notes.txt").write_text("mine")  # a file of the user's: refused as before
    with pytest.raises(finetune.cli.InputError, match="is not empty and holds no checkpoint to resume"):
        finetune.runs.checkpoint_to_resume(training_args(tmp_path))


@pytest.mark.parametrize("max_shard_size", [None, "40KB"])  # one weights file, or an index and shards
def test_a_checkpoint_is_checked_against_the_model_before_training(max_shard_size, tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(REPO_DIR / "assets/tiny-bert", num_labels=2)
    checkpoint = tmp_path / "checkpoint-4"
    AutoModelForSequenceClassification.from_config(config).save_pretrained(
        checkpoint, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    assert (checkpoint / "model.safetensors.index.json").exists() is bool(max_shard_size)
    args = finetune.arguments.TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    finetune.modeling.check_training_setup(args, AutoModelForSequenceClassification.from_config(config), str(checkpoint))
    config.intermediate_size *= 2
    with pytest.raises(finetune.cli.InputError, match=r"cannot resume from .*checkpoint-4: .* \(size mismatch for "
                                                r"bert\.encoder\.layer\.\d\.\S+: \[[\d, ]+\] in the checkpoint, "
                                                r"\[[\d, ]+\] here\)"):
        finetune.modeling.check_training_setup(args, AutoModelForSequenceClassification.from_config(config), str(checkpoint))


def test_a_checkpoint_with_another_head_or_tied_weights(tmp_path):
    """A SQuAD checkpoint resumed by an SST-2 run: same shapes where names agree, but other head weights (the
    Trainer would load it with warnings and then fail on the optimizer state). Tied weights, saved once, are no
    mismatch."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForQuestionAnswering
    from transformers import AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(REPO_DIR / "assets/tiny-bert", num_labels=2)
    args = finetune.arguments.TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(tmp_path / "squad")
    with pytest.raises(finetune.cli.InputError, match=r"cannot resume from .*squad: it holds the weights of another model "
                                                r"\(not in the checkpoint: bert\.pooler\.dense\.weight, "
                                                r"bert\.pooler\.dense\.bias, classifier\.weight, \.\.\.; in the "
                                                r"checkpoint but not in this model: qa_outputs\.bias, "
                                                r"qa_outputs\.weight\)"):
        finetune.modeling.check_training_setup(args, AutoModelForSequenceClassification.from_config(config), str(tmp_path / "squad"))
    masked_lm = AutoModelForMaskedLM.from_config(config)  # its decoder weight is the word embeddings
    masked_lm.save_pretrained(tmp_path / "mlm")
    finetune.modeling.check_training_setup(args, masked_lm, str(tmp_path / "mlm"))


def test_rerunning_a_finished_run_picks_its_last_checkpoint(uninterrupted_run):
    assert finetune.runs.checkpoint_to_resume(training_args(uninterrupted_run)) == str(uninterrupted_run / "checkpoint-30")


def test_resuming_another_models_checkpoint_is_one_error_line(uninterrupted_run, tmp_path, capsys):
    config = json.loads((REPO_DIR / "assets/tiny-bert/config.json").read_text())
    other = tmp_path / "other-config"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({**config, "hidden_size": 2 * config["hidden_size"]}))
    output_dir = tmp_path / "resumed"
    code, err = run_in_process([*RESUME_RUN, "--config_name", other, "--output_dir", output_dir,
                                "--resume_from_checkpoint", uninterrupted_run / "checkpoint-8"], capsys)
    one_line_error(code, err, f"cannot resume from {uninterrupted_run / 'checkpoint-8'}: its weights do not fit",
                   "size mismatch for", "start afresh in another --output_dir")  # one line: before tokenization
    assert not output_dir.exists()


# ---- Output folder policy


def training_args(output_dir, *flags):
    argv = ["--output_dir", str(output_dir), "--do_train", "--report_to", "none", *map(str, flags)]
    return finetune.cli.parse_args((finetune.arguments.TrainingArguments,), argv)[0]


def test_non_empty_output_dir_without_checkpoint_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code, err = run_in_process([*SHORT_RUN, "--output_dir", tmp_path], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0] == (f"error: --output_dir {tmp_path} is not empty and holds no checkpoint to resume; "
                        "choose another --output_dir or pass --overwrite_output_dir to write into it "
                        "(files already there are kept)")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def make_user_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "my-data").mkdir()
    (folder / "my-data" / "train.tsv").write_text("sentence\tlabel\n")
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_user_files_kept(folder, user_files):
    for path, content in user_files.items():
        assert (folder / path).read_bytes() == content, path


def test_overwrite_output_dir_writes_the_run_and_keeps_user_files(tmp_path, capsys):
    user_files = make_user_files(tmp_path)
    code, err = run_in_process([*SHORT_RUN, "--output_dir", tmp_path, "--overwrite_output_dir", "--save_strategy",
                                "steps", "--save_steps", 1, "--save_total_limit", 1], capsys)
    assert code == 0, err
    assert_user_files_kept(tmp_path, user_files)
    assert (tmp_path / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2"]  # its own rotation only


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("parent, folder", [("", "checkpoint-1-before-cleanup"),
                                            ("from-checkpoint-500", "checkpoint-best")])  # 500 from the parent's name
def test_save_total_limit_never_deletes_a_user_folder_named_like_a_checkpoint(tmp_path, capsys, overwrite, parent,
                                                                              folder):
    """The Trainer's rotation counts a `checkpoint-*` folder as a checkpoint when its path holds checkpoint-<digits>."""
    output_dir = tmp_path / parent
    user_files = make_user_files(output_dir)
    (output_dir / folder).mkdir()
    (output_dir / folder / "model.bin").write_text("precious")
    user_files[Path(folder) / "model.bin"] = b"precious"
    flags = ["--overwrite_output_dir"] if overwrite else []
    code, err = run_in_process([*SHORT_RUN, "--output_dir", output_dir, *flags, "--save_strategy", "steps",
                                "--save_steps", 1, "--save_total_limit", 1], capsys)
    assert code == 2 and f"{folder}, which --save_total_limit could delete" in err, err
    assert_user_files_kept(output_dir, user_files)
    assert not (output_dir / "model.safetensors").exists()


def test_overwrite_with_save_total_limit_rotates_only_checkpoints_a_run_record_vouches_for(uninterrupted_run):
    """Starting over may rotate away the earlier run's checkpoints; without a record they may be anyone's copies."""
    overwrite = training_args(uninterrupted_run, "--overwrite_output_dir", "--save_total_limit", 2)
    with pytest.raises(finetune.cli.InputError, match=r"checkpoints \(checkpoint-30, ...\) that no run record"):
        finetune.runs.checkpoint_to_resume(overwrite)
    assert finetune.runs.checkpoint_to_resume(overwrite, recorded=True) is None  # a fresh start
    # resuming that run with a limit is fine: the checkpoints are its own
    args = training_args(uninterrupted_run, "--save_total_limit", 2)
    assert finetune.runs.checkpoint_to_resume(args) == str(uninterrupted_run / "checkpoint-30")


def record_atomic_writes(monkeypatch, *modules):
    written = []
    atomic_write_text = finetune.outputs.atomic_write_text

    def recording(path, text):
        written.append(os.path.basename(path))
        return atomic_write_text(path, text)

    for module in (finetune.outputs, *modules):  # the scripts import it by name; the JSON writer calls outputs' own
        monkeypatch.setattr(module, "atomic_write_text", recording)
    return written


def test_results_and_reports_are_written_atomically(tmp_path, capsys, monkeypatch):
    written = record_atomic_writes(monkeypatch, run_glue_sst2)
    code, err = run_in_process([*SHORT_RUN, "--validation_file", SAMPLE_DIR / "sst2_dev.tsv", "--test_file",
                                SAMPLE_DIR / "sst2_test.tsv", "--do_eval", "--do_predict", "--output_dir", tmp_path],
                               capsys)
    assert code == 0, err
    results = {"train_results.json", "eval_results.json", "all_results.json", "eval_failures.tsv",
               "predict_results.tsv"}
    assert results <= set(written)
    assert results <= {p.name for p in tmp_path.iterdir()}
    assert not list(tmp_path.glob(".*.tmp"))


def test_qa_results_predictions_and_reports_are_written_atomically(tmp_path, capsys, monkeypatch):
    import run_squad

    model = saved_tiny_model(tmp_path / "model", "AutoModelForQuestionAnswering")
    written = record_atomic_writes(monkeypatch, run_squad)
    code, err = run_in_process(["--model_name_or_path", model, "--validation_file", SAMPLE_DIR / "squad_dev.json",
                                "--test_file", SAMPLE_DIR / "squad_test.json", "--do_eval", "--do_predict",
                                "--max_seq_length", 64, "--doc_stride", 16, "--max_query_length", 16,
                                "--report_to", "none", "--output_dir", tmp_path / "out"], capsys, run_squad)
    tmp_path = tmp_path / "out"
    assert code == 0, err
    results = {"eval_results.json", "all_results.json", "eval_failures.tsv", "eval_predictions.json",
               "eval_nbest_predictions.json", "predict_predictions.json", "predict_nbest_predictions.json"}
    assert results <= set(written)
    assert {p.name for p in tmp_path.iterdir()} <= set(written)  # every file of an eval/predict run
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "eval_results.json"
    finetune.outputs.atomic_write_json(target, {"eval_accuracy": 0.5})

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        finetune.outputs.atomic_write_json(target, {"eval_accuracy": 0.9})
    assert json.loads(target.read_text()) == {"eval_accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["eval_results.json"]  # no temp file left behind


def test_large_mappings_are_written_one_entry_a_line_and_read_back_the_same(tmp_path):
    nbest = {"q1": [{"text": "Zürich \"old\" town", "probability": 0.1 + 0.2}], "q\n2": [], "q3": {"a": None}}
    finetune.outputs.atomic_write_json(tmp_path / "nbest.json", nbest, entry_per_line=True)
    text = (tmp_path / "nbest.json").read_text(encoding="utf-8")
    assert json.loads(text) == nbest
    assert text.splitlines()[1] == '  "q1": [{"text": "Zürich \\"old\\" town", "probability": 0.30000000000000004}],'
    assert len(text.splitlines()) == 2 + len(nbest)
    finetune.outputs.atomic_write_json(tmp_path / "empty.json", {}, entry_per_line=True)
    assert json.loads((tmp_path / "empty.json").read_text()) == {}


# ---- Tokens and remote code

TOKEN = "hf_reliabilityTestToken0123456789abcdef"


def test_hub_token_never_reaches_logs_or_files(tmp_path):
    output_dir = tmp_path / "out"
    result = run_python(*script_command(*SHORT_RUN, "--validation_file", SAMPLE_DIR / "sst2_dev.tsv", "--do_eval",
                                        "--output_dir", output_dir, "--hub_token", TOKEN, "--save_strategy", "steps",
                                        "--save_steps", 1, "--logging_steps", 1, "--log_level", "debug"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Training arguments:" in result.stderr and "hub_token=<HUB_TOKEN>" in result.stderr
    assert TOKEN not in result.stdout + result.stderr
    files = [p for p in output_dir.rglob("*") if p.is_file()]
    assert any(p.name == "training_args.bin" and p.parent.name == "checkpoint-1" for p in files)
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path
    saved = torch.load(output_dir / "training_args.bin", weights_only=False)
    assert saved.hub_token is None and saved.output_dir == str(output_dir)


def test_the_hub_client_still_gets_the_token_in_the_running_process(tmp_path):
    args = training_args(tmp_path, "--hub_token", TOKEN)
    assert args.hub_token == TOKEN
    assert TOKEN not in str(args) and TOKEN not in args.to_json_string()


@pytest.mark.parametrize("typo", [["--hubtoken", TOKEN], [f"--hub_tokn={TOKEN}"], ["--hub-model", "x", TOKEN]])
def test_a_misspelled_token_flag_is_not_echoed_in_the_error(tmp_path, capsys, typo):
    code, err = run_in_process([*SHORT_RUN, "--output_dir", tmp_path / "out", *typo], capsys)
    assert code == 2 and "unknown command-line argument" in err and "<redacted>" in err
    assert TOKEN not in err


def test_trust_remote_code_is_off_unless_asked(tmp_path, capsys):
    assert finetune.arguments.ModelArguments().trust_remote_code is False
    model = tmp_path / "remote-model"
    model.mkdir()
    marker = tmp_path / "remote-code-ran"
    (model / "config.json").write_text(json.dumps({
        "model_type": "evil-bert", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}}))
    (model / "configuration_evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nfrom transformers import BertConfig\n"
        "class EvilConfig(BertConfig):\n    model_type = 'evil-bert'\n"
    )
    code, err = run_in_process([*SHORT_RUN[len(TINY_MODEL):], "--model_name_or_path", model, "--tokenizer_name",
                                REPO_DIR / "assets/tiny-bert", "--output_dir", tmp_path / "out"], capsys)
    assert code == 2 and "trust_remote_code" in err and len(err.strip().splitlines()) == 1, err
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


# ---- Bad arguments (the file-level cases live in test_glue_sst2.py and test_run_squad.py)


def one_line_error(code, err, *messages):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for message in messages:
        assert message in lines[0], err


def scripts():
    import run_squad

    squad = [*TINY_MODEL, "--train_file", SAMPLE_DIR / "squad_train.json", "--do_train", "--max_steps", 2,
             "--max_seq_length", 64, "--doc_stride", 16, "--max_query_length", 16, "--report_to", "none"]
    return {"run_glue_sst2": (run_glue_sst2, SHORT_RUN), "run_squad": (run_squad, squad)}


@pytest.fixture(params=["run_glue_sst2", "run_squad"])
def script(request):
    """(module, arguments of a short valid training run) for each script: the argument checks are shared code."""
    return scripts()[request.param]


def test_max_seq_length_above_the_models_limit(tmp_path, capsys, script):
    module, run = script
    code, err = run_in_process([*run, "--max_seq_length", 1024, "--output_dir", tmp_path / "out"], capsys, module)
    one_line_error(code, err, "--max_seq_length 1024 is above the model's limit of 512")
    assert not (tmp_path / "out").exists()


def test_missing_recipe_file(tmp_path, capsys, script):
    module, _ = script
    code, err = run_in_process([tmp_path / "recipes/nope.yaml", "--output_dir", tmp_path / "out"], capsys, module)
    one_line_error(code, err, "nope.yaml not found")
    code, err = run_in_process([tmp_path / "recipe.txt", "--output_dir", tmp_path / "out"], capsys, module)
    one_line_error(code, err, "recipe.txt: a recipe file must end in .yaml, .yml or .json")
    assert not (tmp_path / "out").exists()


def test_unknown_recipe_key_and_broken_recipe(tmp_path, capsys, script):
    module, run = script
    recipe = tmp_path / "r.yaml"
    recipe.write_text("do_train: true\nnum_train_epoch: 3\n")
    code, err = run_in_process([recipe, *run, "--output_dir", tmp_path / "out"], capsys, module)
    one_line_error(code, err, str(recipe), "unknown key 'num_train_epoch'")
    recipe.write_text("do_train: true\nlearning_rate: [1e-5\n")
    code, err = run_in_process([recipe, *run, "--output_dir", tmp_path / "out"], capsys, module)
    one_line_error(code, err, str(recipe), "not valid YAML/JSON")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, message", [
    ("learning_rate: abc\n", "argument --learning_rate/--learning-rate: invalid float value: 'abc'; fix the value in "
                             "recipe file {recipe} or the command line"),
    ("max_steps: 1e3\n", "argument --max_steps/--max-steps: invalid int value: '1e3'"),
    ("num_train_epochs: [1, 2]\n", "recipe file {recipe}: 'num_train_epochs' takes one value, not a list"),
])
def test_a_recipe_value_of_the_wrong_type_is_one_line(tmp_path, capsys, script, content, message):
    """Not argparse's usage text (~130 lines) above the message."""
    module, run = script
    recipe = tmp_path / "r.yaml"
    recipe.write_text(content)
    code, err = run_in_process([recipe, *run, "--output_dir", tmp_path / "out"], capsys, module)
    one_line_error(code, err, message.format(recipe=recipe))
    assert not (tmp_path / "out").exists()


def test_push_to_hub_offline_is_one_line_before_anything(tmp_path, capsys, script):
    module, run = script  # the tests run with HF_HUB_OFFLINE=1
    code, err = run_in_process([*run, "--output_dir", tmp_path / "out", "--push_to_hub", "--hub_model_id", "me/x"],
                               capsys, module)
    one_line_error(code, err, "--push_to_hub: HF_HUB_OFFLINE=1 is set, so nothing can be pushed")
    assert not (tmp_path / "out").exists()


def test_push_to_hub_without_network_stops_before_training(tmp_path, no_network_env):
    """The Trainer creates the Hub repository when it is built, before training: an unreachable Hub is one line
    there (after the data is tokenized), not a traceback."""
    endpoint = no_network_env["HF_ENDPOINT"]
    result = run_python(*script_command(*SHORT_RUN, "--output_dir", tmp_path / "out", "--push_to_hub",
                                        "--hub_model_id", "me/x"), env={**no_network_env, "HF_TOKEN": "hf_" + "x" * 30})
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"error: --push_to_hub: could not create the Hub repository me/x (could not reach the Hub at "
                    f"{endpoint} (no network?)); nothing was trained: fix that, or drop --push_to_hub and push later "
                    "with push_to_hub.py"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "x" * 30 not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--lerning_rate", "--learning_rat"])  # a typo, a cut name (argparse's prefix match)
def test_unknown_flag(tmp_path, capsys, script, flag):
    module, run = script
    code, err = run_in_process([*run, "--output_dir", tmp_path / "out", flag, 3e-5], capsys, module)
    one_line_error(code, err, f"unknown command-line argument(s) {flag} 3e-05")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["--load_best_model_at_end", "true", "--eval_strategy", "no", "--save_strategy", "steps"],
     "load_best_model_at_end requires"),
    (["--bf16", "true", "--fp16", "true"], "bf16"),  # (bf16 alone runs on any CPU, emulated where not native)
    *([(["--tf32", "true"], "tf32 requires Ampere or a newer GPU arch, cuda>=11 and torch>=1.7 (tf32 needs a GPU of "
                            "the Ampere generation or newer, bf16 such a GPU or a CPU: leave --bf16 and --tf32 out to "
                            "have them chosen for this machine, or set them false)")]
      if not torch.cuda.is_available() else []),
])
def test_arguments_the_trainer_rejects_are_one_error_line(tmp_path, capsys, script, flags, message):
    module, run = script
    code, err = run_in_process([*run, "--output_dir", tmp_path / "out", *flags], capsys, module)
    one_line_error(code, err, "the arguments do not fit together or this machine: ", message)
    assert not (tmp_path / "out").exists()


def test_a_model_folder_without_weights_is_one_error_line(tmp_path, capsys, script):
    module, run = script
    flags = [*run[len(TINY_MODEL):], "--model_name_or_path", REPO_DIR / "assets/tiny-bert"]  # config + tokenizer only
    code, err = run_in_process([*flags, "--output_dir", tmp_path / "out"], capsys, module)
    one_line_error(code, err, "could not load the weights of", "tiny-bert", "--config_name")
    assert not (tmp_path / "out").exists()


def test_an_empty_flag_unsets_the_recipes_model_and_persistent_workers_need_workers(tmp_path, capsys, script):
    """A recipe names a Hub model and asks for persistent loader workers; `--model_name_or_path ""` with
    --config_name trains from scratch, and --dataloader_num_workers 0 turns the persistent workers off instead of
    failing in torch's DataLoader."""
    module, run = script
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model_name_or_path: nobody/unreachable-model\ndataloader_num_workers: 2\n"
                      "dataloader_persistent_workers: true\n")
    code, err = run_in_process([recipe, *run, "--model_name_or_path", "", "--dataloader_num_workers", 0,
                                "--output_dir", tmp_path / "out"], capsys, module)
    assert code == 0, err
    assert (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("flags, message", [
    (["--per_device_train_batch_size", 0], "--per_device_train_batch_size must be at least 1 (got 0)"),
    (["--per_device_eval_batch_size", 0], "--per_device_eval_batch_size must be at least 1 (got 0)"),
    (["--gradient_accumulation_steps", 0], "--gradient_accumulation_steps must be at least 1 (got 0)"),
    (["--max_steps", -1, "--num_train_epochs", 0], "--num_train_epochs 0 trains nothing"),
    (["--max_train_samples", 0], "--max_train_samples must be at least 1 (got 0)"),
    (["--max_eval_samples", 0], "--max_eval_samples must be at least 1 (got 0)"),
    (["--cpu_threads", 0], "--cpu_threads must be at least 1 (got 0)"),
    (["--save_strategy", "best", "--eval_strategy", "no"], "--eval_strategy no makes none: nothing would be saved"),
    (["--learning_rate", -1], "--learning_rate must not be negative (got -1)"),
    (["--dataloader_num_workers", -1], "--dataloader_num_workers must be 0 or more (got -1)"),
    (["--max_seq_length", 0], "--max_seq_length must be at least 1 (got 0)"),  # the tokenizer: no truncation
])
def test_sizes_that_would_fail_deep_in_a_run_or_train_nothing(tmp_path, capsys, script, flags, message):
    module, run = script
    code, err = run_in_process([*run, "--output_dir", tmp_path / "out", *flags], capsys, module)
    one_line_error(code, err, message)
    assert not (tmp_path / "out").exists()


def test_an_output_dir_that_is_a_file(tmp_path, capsys, script):
    module, run = script
    (tmp_path / "results").write_text("mine")
    code, err = run_in_process([*run, "--output_dir", tmp_path / "results"], capsys, module)
    one_line_error(code, err, f"--output_dir {tmp_path / 'results'} is a file, not a folder")
    assert (tmp_path / "results").read_text() == "mine"


def test_an_output_dir_below_a_file_or_in_a_read_only_folder(tmp_path, capsys, script, monkeypatch):
    """Found before any training, not at the first save after it."""
    module, run = script
    (tmp_path / "results").write_text("mine")
    code, err = run_in_process([*run, "--output_dir", tmp_path / "results" / "run1"], capsys, module)
    one_line_error(code, err, f"{tmp_path / 'results'} is a file, not a folder")
    (tmp_path / "read-only").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: real_access(path, mode) and "read-only" not in str(path))
    code, err = run_in_process([*run, "--output_dir", tmp_path / "read-only" / "run1"], capsys, module)
    one_line_error(code, err, f"{tmp_path / 'read-only'} is not writable here (read-only or no permission)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["read-only", "results"]


def test_a_recipes_relative_path_run_from_another_folder_says_where_to_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_in_process([REPO_DIR / "recipes/sst2/quickstart.yaml", "--output_dir", tmp_path / "out"], capsys)
    one_line_error(code, err, f"data/sample/sst2_train.tsv: file not found in {tmp_path}",
                   f"run from {REPO_DIR} or give --train_file an absolute path")


@pytest.mark.parametrize("metric, available", [("accuracy", "exact_match, f1"), ("eval_exact", "exact_match, f1")])
def test_a_best_model_metric_the_evaluation_lacks_stops_before_training(tmp_path, capsys, metric, available):
    import run_squad

    _, run = scripts()["run_squad"]
    code, err = run_in_process([*run, "--output_dir", tmp_path / "out", "--eval_strategy", "steps", "--save_strategy",
                                "steps", "--load_best_model_at_end", "true", "--metric_for_best_model", metric],
                               capsys, run_squad)
    one_line_error(code, err, f"--metric_for_best_model {metric.removeprefix('eval_')} is not a metric of this run's "
                   f"evaluation; choose one of {available}")
    assert not (tmp_path / "out").exists()


def test_squad_keeps_the_best_checkpoint_by_f1_when_no_metric_is_named(tmp_path, capsys):
    """The Trainer's default, the evaluation loss, does not exist for QA: it failed after the first evaluation."""
    import run_squad

    _, run = scripts()["run_squad"]
    output_dir = tmp_path / "out"
    code, err = run_in_process([*run, "--max_steps", 3, "--validation_file", SAMPLE_DIR / "squad_dev.json", "--do_eval",
                                "--eval_strategy", "steps", "--eval_steps", 1, "--save_strategy", "steps",
                                "--save_steps", 1, "--load_best_model_at_end", "true", "--output_dir", output_dir],
                               capsys, run_squad)
    assert code == 0, err[-3000:]
    state = json.loads((output_dir / "trainer_state.json").read_text())
    f1_by_step = {entry["step"]: entry["eval_f1"] for entry in state["log_history"] if "eval_f1" in entry}
    assert len(f1_by_step) == 3 and state["best_metric"] == max(f1_by_step.values())
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{max(f1_by_step, key=f1_by_step.get)}")


def test_a_reporting_integration_that_is_not_installed_stops_before_the_data(tmp_path, capsys, monkeypatch, script):
    import transformers

    monkeypatch.setattr(transformers.integrations, "get_available_reporting_integrations", lambda: ["tensorboard"])
    module, run = script
    code, err = run_in_process([*run, "--output_dir", tmp_path / "out", "--report_to", "wandb"], capsys, module)
    one_line_error(code, err, "--report_to wandb: not installed here; pip install wandb or pass --report_to none")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="needs bitsandbytes absent")
def test_an_optimizer_whose_package_is_missing_stops_before_the_data_is_tokenized(tmp_path, capsys, script):
    module, run = script
    code, err = run_in_process([*run, "--output_dir", tmp_path / "out", "--optim", "adamw_bnb_8bit"], capsys, module)
    one_line_error(code, err, "--optim adamw_bnb_8bit needs a package that is not installed: ", "bitsandbytes")
    assert not (tmp_path / "out").exists()


def test_liger_kernels_without_their_package_stop_before_the_data_is_tokenized(tmp_path, capsys, script,
                                                                               monkeypatch):
    import transformers

    monkeypatch.setattr(transformers.utils, "is_liger_kernel_available", lambda: False)
    module, run = script
    code, err = run_in_process([*run, "--output_dir", tmp_path / "out", "--use_liger_kernel", "true"], capsys, module)
    one_line_error(code, err, "--use_liger_kernel needs the liger-kernel package: pip install liger-kernel")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, metric, scheduler_kwargs", [
    (["--lr_scheduler_type", "reduce_lr_on_plateau"], "loss", {}),
    (["--lr_scheduler_type", "reduce_lr_on_plateau", "--metric_for_best_model", "accuracy"], "accuracy",
     {"mode": "max"}),
    (["--lr_scheduler_type", "reduce_lr_on_plateau", "--metric_for_best_model", "accuracy",
      "--lr_scheduler_kwargs", '{"mode": "min", "patience": 2}'], "accuracy", {"mode": "min", "patience": 2}),
    (["--save_strategy", "best"], "loss", {}),
])
def test_evaluation_comparing_settings_get_a_metric_and_a_plateau_that_waits_for_it_to_rise(flags, metric,
                                                                                            scheduler_kwargs):
    """torch's ReduceLROnPlateau lowers the rate when its metric stops falling: for accuracy or F1 it must wait for a
    rise. The plateau scheduler and --save_strategy best compare evaluations by a metric, as --load_best_model_at_end
    does, and get the script's default when none is named (the Trainer refuses --save_strategy best without one)."""
    import run_squad

    argv = ["--output_dir", "/tmp/unused", "--do_train", "--eval_strategy", "epoch", *flags]
    args = finetune.cli.parse_args((finetune.arguments.TrainingArguments,), argv)[0]
    assert args.metric_for_best_model == metric and (args.lr_scheduler_kwargs or {}) == scheduler_kwargs
    if metric == "loss":  # the same run of run_squad.py compares F1, which rises
        squad_args = finetune.cli.parse_args((run_squad.SquadTrainingArguments,), argv)[0]
        assert squad_args.metric_for_best_model == "f1" and squad_args.greater_is_better
        if "reduce_lr_on_plateau" in flags:
            assert squad_args.lr_scheduler_kwargs == {"mode": "max"}
