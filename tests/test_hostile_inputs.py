"""Hostile input to run_glue_sst2.py, run_squad.py and push_to_hub.py: a token typed where argparse does not expect it
is never echoed, and bad numbers, data files, result files and a full disk end with one error line, exit code 2, no
traceback, and nothing written to the output folder."""

import errno
import json

import pytest
import safetensors.torch
import torch
from conftest import SAMPLE_DIR, TINY_MODEL, run_main_with_output

import push_to_hub
import run_glue_sst2
import run_squad

TOKEN = "hf_hostileInputToken0123456789"
PLAIN_SECRET = "plain-secret-value-4711"  # a token flag's value not shaped like a Hub token
ENV_SECRET = "env-secret-value-0815"  # HF_TOKEN's value in every test below
SECRETS = (TOKEN, PLAIN_SECRET, ENV_SECRET)
SST2_RUN = [*TINY_MODEL, "--train_file", SAMPLE_DIR / "sst2_train.tsv", "--do_train", "--max_steps", 2,
            "--per_device_train_batch_size", 8, "--max_seq_length", 32, "--report_to", "none", "--disable_tqdm", "true"]
SQUAD_RUN = [*TINY_MODEL, "--train_file", SAMPLE_DIR / "squad_train.json", "--do_train", "--max_steps", 2,
             "--max_seq_length", 64, "--doc_stride", 16, "--max_query_length", 16, "--report_to", "none"]
SCRIPTS = {"run_glue_sst2": (run_glue_sst2, SST2_RUN), "run_squad": (run_squad, SQUAD_RUN)}


@pytest.fixture(autouse=True)
def env_token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", ENV_SECRET)


@pytest.fixture(params=sorted(SCRIPTS))
def script(request):
    return SCRIPTS[request.param]


def assert_one_error_line(code, out, err, *messages):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    for secret in SECRETS:
        assert secret not in out + err
    for message in messages:
        assert message in lines[0], err


# ---- Secrets


@pytest.mark.parametrize("flags, message", [
    (["--seed", TOKEN], "argument --seed: invalid int value: '<redacted>'"),
    (["--learning_rate", TOKEN], "argument --learning_rate/--learning-rate: invalid float value: '<redacted>'"),
    (["--do_train", TOKEN], "argument --do_train/--do-train: Truthy value expected: got <redacted> but"),
    (["--hub-tokn", PLAIN_SECRET], "unknown command-line argument(s) --hub-tokn <redacted>;"),
    ([f"--hubtoken={PLAIN_SECRET}"], "unknown command-line argument(s) --hubtoken=<redacted>;"),
    (["--hub_token", PLAIN_SECRET, "--seed", PLAIN_SECRET], "invalid int value: '<redacted>'"),
    (["--seed", ENV_SECRET], "invalid int value: '<redacted>'"),
])
def test_a_token_where_argparse_expects_something_else_is_not_echoed(tmp_path, capsys, script, flags, message):
    module, args = script
    code, out, err = run_main_with_output(module, [*args, "--output_dir", tmp_path / "out", *flags], capsys)
    assert_one_error_line(code, out, err, message)
    assert not (tmp_path / "out").exists()


def test_a_recipes_token_is_not_echoed_by_another_flags_error(tmp_path, capsys, script):
    module, args = script
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"hub_token: {PLAIN_SECRET}\n")
    code, out, err = run_main_with_output(module, [recipe, *args, "--output_dir", tmp_path / "out", "--data_seed", PLAIN_SECRET],
                         capsys)
    assert_one_error_line(code, out, err, "argument --data_seed/--data-seed: invalid int value: '<redacted>'")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def finished_folder(tmp_path):
    """What push_to_hub.py checks before reading anything: a config.json and weights."""
    folder = tmp_path / "finished"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


@pytest.mark.parametrize("flags, message", [
    (["--task", TOKEN], "argument --task: invalid choice: '<redacted>' (choose from"),
    (["{folder}", "--hub-tokn", PLAIN_SECRET], "unknown command-line argument(s) --hub-tokn <redacted>;"),
    (["{folder}", "--hub_token", PLAIN_SECRET, "--hub_private_repo", PLAIN_SECRET],
     "argument --hub_private_repo: Truthy value expected: got <redacted>"),  # (it takes true/false, or nothing)
    ([], "the following arguments are required: output_dir; fix the value in the command line"),
])
def test_push_to_hub_errors_are_one_line_without_the_token(finished_folder, capsys, flags, message):
    """argparse's own error prints the usage text, then the value."""
    before = sorted(p.name for p in finished_folder.iterdir())
    code, out, err = run_main_with_output(push_to_hub, [flag.format(folder=finished_folder) for flag in flags], capsys)
    assert_one_error_line(code, out, err, message)
    assert sorted(p.name for p in finished_folder.iterdir()) == before


def test_push_to_hub_with_a_config_that_is_not_json(finished_folder, capsys):
    (finished_folder / "config.json").write_text("{not json")
    code, out, err = run_main_with_output(push_to_hub, [finished_folder, "--hub_model_id", "me/x"], capsys)
    assert_one_error_line(code, out, err, f"{finished_folder / 'config.json'} cannot be read as a model config",
                          "name the task with --task")
    assert sorted(p.name for p in finished_folder.iterdir()) == ["config.json", "model.safetensors"]


def test_a_bug_keeps_its_traceback_but_not_the_token(tmp_path, capsys, monkeypatch):
    def broken(*args):
        raise ValueError(f"something unforeseen with {TOKEN} and {ENV_SECRET}")

    monkeypatch.setattr(run_glue_sst2, "get_datasets", broken)
    code, out, err = run_main_with_output(run_glue_sst2, [*SST2_RUN, "--output_dir", tmp_path / "out"], capsys)
    assert code == 1 and "Traceback" in err and "ValueError: something unforeseen with <redacted> and <redacted>" in err
    assert not any(secret in out + err for secret in SECRETS)


# ---- Numbers


@pytest.mark.parametrize("flags, message", [
    (["--seed", -1], "--seed must be between 0 and 4294967295 (got -1)"),
    (["--seed", 2**32], "--seed must be between 0 and 4294967295 (got 4294967296)"),
    (["--data_seed", -1], "--data_seed must be between 0 and 4294967295 (got -1)"),
    (["--learning_rate", "nan"], "argument --learning_rate/--learning-rate: nan is not a finite number"),
    (["--num_train_epochs", "inf"], "argument --num_train_epochs/--num-train-epochs: inf is not a finite number"),
    (["--weight_decay", "NaN"], "argument --weight_decay/--weight-decay: NaN is not a finite number"),
    (["--warmup_steps", "nan"], "argument --warmup_steps/--warmup-steps: nan is not a finite number"),
    (["--max_grad_norm=-inf"], "argument --max_grad_norm/--max-grad-norm: -inf is not a finite number"),
    (["--weight_decay", -0.01], "--weight_decay must be at least 0 (got -0.01)"),
    (["--max_grad_norm", -1], "--max_grad_norm must be at least 0 (got -1)"),
    (["--adam_beta2", 1], "--adam_beta2 must be at least 0 and below 1 (got 1)"),
    (["--adam_epsilon=-1e-8"], "--adam_epsilon must be at least 0 (got -1e-08)"),
    (["--label_smoothing_factor", 1.5], "--label_smoothing_factor must be at least 0 and below 1 (got 1.5)"),
    (["--save_steps", -1], "--save_steps must be at least 0 (got -1)"),
    (["--warmup_steps", -1], "Expected value warmup_steps >= 0"),
])
def test_out_of_range_and_non_finite_numbers(tmp_path, capsys, script, flags, message):
    module, args = script
    code, out, err = run_main_with_output(module, [*args, "--output_dir", tmp_path / "out", *flags], capsys)
    assert_one_error_line(code, out, err, message)
    assert not (tmp_path / "out").exists()


def test_a_nan_no_answer_threshold(tmp_path, capsys):
    """NaN compares false with every score: the run would never answer "no answer"."""
    code, out, err = run_main_with_output(run_squad, [*SQUAD_RUN, "--output_dir", tmp_path / "out", "--version_2_with_negative",
                                     "--null_score_diff_threshold", "nan"], capsys)
    assert_one_error_line(code, out, err, "argument --null_score_diff_threshold/--null-score-diff-threshold: nan is "
                                          "not a finite number")
    assert not (tmp_path / "out").exists()


def test_an_empty_output_dir(tmp_path, capsys, script, monkeypatch):
    """"" would be the current folder."""
    module, args = script
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main_with_output(module, [*args, "--output_dir", ""], capsys)
    assert_one_error_line(code, out, err, "--output_dir is empty; give the folder to write the model and results into")
    assert not any(tmp_path.iterdir())


# ---- Data and result files


@pytest.mark.parametrize("name, content, message", [
    ("train.tsv", "sentence\tlabel\ngood\t1\nbad\t99999999999999999999\n",
     "train.tsv, line 3: label '99999999999999999999' is outside the label set {0, 1}"),
    ("train.tsv", f"sentence\tlabel\ngood\t1\nbad\t{'9' * 5000}\n",
     "train.tsv, line 3: label '99999999999999999999999999999... (5000 characters) is outside the label set"),
    ("train.jsonl", '{"sentence": "good", "label": 1}\n{"sentence": "bad", "label": 1e400}\n',
     "train.jsonl, line 2: label inf is not 0/1 or negative/positive"),
    ("train.json", f'[{{"sentence": "good", "label": 1}}, {{"sentence": "bad", "label": 1{"0" * 400}}}]',
     "train.json, record 1: label 100000000000000000000000000000... (401 characters) is outside the label set"),
    ("train.jsonl", f'{{"sentence": "good", "label": 1}}\n{{"sentence": "bad", "label": {"9" * 5000}}}\n',
     "train.jsonl, line 2: a number of more than 4300 digits; fix that line"),
    ("train.csv", "sentence,label,label\ngood,1,0\n",
     "train.csv, line 1: the header names the column 'label' more than once; rename or remove the extra column"),
    ("train.tsv", "sentence\tlabel\tsentence\ngood\t1\tbad\n", "the header names the column 'sentence' more than once"),
])
def test_absurd_labels_and_repeated_columns(tmp_path, capsys, name, content, message):
    data = tmp_path / name
    data.write_text(content)
    code, out, err = run_main_with_output(run_glue_sst2, [*SST2_RUN, "--train_file", data, "--output_dir", tmp_path / "out"], capsys)
    assert_one_error_line(code, out, err, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, problem", [
    ("{\"eval_f1\": 0.9", "cannot be read back (Expecting ',' delimiter: line 1 column 16 (char 15))"),
    ("[0.9]", "holds a JSON list, not an object"),
])
def test_a_results_file_the_run_cannot_merge_into_stops_it_before_training(tmp_path, capsys, script, content,
                                                                          problem):
    module, args = script
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "all_results.json").write_text(content)
    code, out, err = run_main_with_output(module, [*args, "--output_dir", output_dir, "--overwrite_output_dir"], capsys)
    assert_one_error_line(code, out, err, f"{output_dir / 'all_results.json'} {problem}; this run merges its results "
                                          "into it: fix or move that file, or choose another --output_dir")
    assert [p.name for p in output_dir.iterdir()] == ["all_results.json"]
    assert (output_dir / "all_results.json").read_text() == content


# ---- A full disk


def test_a_full_disk_names_the_checkpoint_that_is_kept(tmp_path, capsys, monkeypatch):
    """The error may come wrapped in another; a checkpoint without a readable trainer_state.json is not complete."""
    output_dir = tmp_path / "out"
    for step, state in ((3, "{}"), (5, None), (10, "{cut")):
        (output_dir / f"checkpoint-{step}").mkdir(parents=True)
        safetensors.torch.save_file({"w": torch.zeros(2)}, output_dir / f"checkpoint-{step}" / "model.safetensors")
        if state is not None:
            (output_dir / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    written = output_dir / "checkpoint-5" / "optimizer.pt"

    def fill_the_disk(*args):
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(written))
        except OSError as error:
            raise RuntimeError("saving failed") from error

    monkeypatch.setattr(run_glue_sst2, "get_datasets", fill_the_disk)
    code, out, err = run_main_with_output(run_glue_sst2, [*SST2_RUN, "--output_dir", output_dir], capsys)
    assert_one_error_line(code, out, err, f"error: the disk is full while writing {written}; the last complete "
                                          f"checkpoint in {output_dir} is kept (checkpoint-3); free space and rerun "
                                          "the same command")
    assert sorted(p.name for p in output_dir.iterdir()) == ["checkpoint-10", "checkpoint-3", "checkpoint-5"]


def test_a_disk_that_fills_up_while_a_checkpoint_is_saved(tmp_path, capsys, monkeypatch):
    """A real run: the second checkpoint cannot be written; the first stays."""
    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        if "checkpoint-2" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    output_dir = tmp_path / "out"
    code, out, err = run_main_with_output(run_glue_sst2, [*SST2_RUN, "--output_dir", output_dir, "--save_strategy", "steps",
                                         "--save_steps", 1], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err, err
    assert last.startswith(f"error: the disk is full while writing {output_dir / 'checkpoint-2'}"), err
    assert last.endswith(f"; the last complete checkpoint in {output_dir} is kept (checkpoint-1); free space and "
                         "rerun the same command"), err
    assert (output_dir / "checkpoint-1" / "trainer_state.json").is_file()
