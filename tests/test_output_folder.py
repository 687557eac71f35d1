"""An --output_dir belongs to one run: its record decides whether a rerun resumes, its lock keeps a second run out,
and a run never writes into what it reads (finetune/runs.py)."""

import fcntl
import json
import shutil
import socket
import subprocess

import pytest
from conftest import REPO_DIR, SAMPLE_DIR, TINY_MODEL, run_main_in_process

import run_glue_sst2

SHORT_RUN = [*TINY_MODEL, "--train_file", SAMPLE_DIR / "sst2_train.tsv", "--do_train", "--max_steps", 2,
             "--per_device_train_batch_size", 8, "--max_seq_length", 32, "--save_strategy", "steps", "--save_steps", 1,
             "--report_to", "none", "--disable_tqdm", "true"]


def run(argv, capsys):
    return run_main_in_process(run_glue_sst2, argv, capsys)


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in folder.rglob("*")}


def one_line_error(code, err, *parts):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def finished_run(tmp_path, capsys):
    output_dir = tmp_path / "out"
    code, err = run([*SHORT_RUN, "--output_dir", output_dir], capsys)
    assert code == 0, err
    return output_dir


def test_a_changed_hyper_parameter_is_refused_before_any_write(finished_run, capsys):
    before = snapshot(finished_run)
    code, err = run([*SHORT_RUN, "--output_dir", finished_run, "--learning_rate", 3e-5], capsys)
    one_line_error(code, err, f"--output_dir {finished_run} belongs to another run: learning_rate 3e-05 here, 5e-05 in "
                              f"the run that wrote {finished_run}", "choose another --output_dir",
                   "--overwrite_output_dir")
    assert snapshot(finished_run) == before


def test_a_changed_training_file_is_refused(finished_run, tmp_path, capsys):
    train = tmp_path / "train.tsv"
    train.write_text((SAMPLE_DIR / "sst2_train.tsv").read_text().replace("\t1\n", "\t0\n", 1))
    code, err = run([*SHORT_RUN, "--output_dir", finished_run, "--train_file", train], capsys)
    one_line_error(code, err, f"train_file {train} here, {SAMPLE_DIR / 'sst2_train.tsv'} in the run that wrote")


def test_the_same_command_resumes(finished_run, capsys, caplog):
    code, err = run([*SHORT_RUN, "--output_dir", finished_run], capsys)
    assert code == 0, err
    assert f"Resuming from {finished_run / 'checkpoint-2'}" in caplog.text


def test_overwrite_output_dir_starts_over_and_keeps_a_users_file(finished_run, capsys, caplog):
    (finished_run / "notes.txt").write_text("mine")
    code, err = run([*SHORT_RUN, "--output_dir", finished_run, "--learning_rate", 3e-5, "--overwrite_output_dir"],
                    capsys)
    assert code == 0, err
    assert "Resuming" not in caplog.text
    assert (finished_run / "notes.txt").read_text() == "mine"
    assert json.loads((finished_run / ".run.json").read_text())["definition"]["learning_rate"] == 3e-5


def test_checkpoints_without_a_record_are_not_resumed_blindly(finished_run, capsys):
    (finished_run / ".run.json").unlink()
    code, err = run([*SHORT_RUN, "--output_dir", finished_run], capsys)
    one_line_error(code, err, "left no .run.json", f"--resume_from_checkpoint {finished_run / 'checkpoint-2'}")


def test_an_evaluation_writes_beside_the_model_without_claiming_the_folder(finished_run, capsys):
    record = json.loads((finished_run / ".run.json").read_text())
    code, err = run(["--model_name_or_path", finished_run, "--validation_file", SAMPLE_DIR / "sst2_dev.tsv",
                     "--do_eval", "--max_eval_samples", 8, "--max_seq_length", 32, "--report_to", "none",
                     "--output_dir", finished_run], capsys)
    assert code == 0, err
    assert (finished_run / "eval_results.json").exists()
    after = json.loads((finished_run / ".run.json").read_text())  # the training run's definition as it was
    assert {key: after[key] for key in record} == record and after["evaluation"]["model"] == str(finished_run)


def hold_lock(folder, pid):
    """The lock as another process holds it: an open file locked by the operating system."""
    folder.mkdir(exist_ok=True)
    lock = open(folder / ".run.lock", "w")
    lock.write(json.dumps({"pid": pid, "host": socket.gethostname()}))
    lock.flush()
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return lock


def test_a_live_lock_refuses_a_second_run_at_once(tmp_path, capsys):
    with hold_lock(tmp_path, 4242):
        code, err = run([*SHORT_RUN, "--output_dir", tmp_path], capsys)
    one_line_error(code, err, f"--output_dir {tmp_path} is in use by another run (process 4242 on "
                              f"{socket.gethostname()}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.lock"]


def test_a_lock_left_by_a_killed_run_does_not_block(tmp_path, capsys, caplog):
    ended = subprocess.Popen(["true"])
    ended.wait()
    hold_lock(tmp_path, ended.pid).close()  # closing the file releases the lock, as the end of a process does
    code, err = run([*SHORT_RUN, "--output_dir", tmp_path], capsys)
    assert code == 0, err
    assert f"left by process {ended.pid}" in caplog.text
    assert not (tmp_path / ".run.lock").exists()  # released at the end of the run


@pytest.mark.parametrize("inside", ["model", "data"])
def test_an_output_dir_holding_what_the_run_reads_is_refused(tmp_path, capsys, inside):
    shutil.copytree(REPO_DIR / "assets/tiny-bert", tmp_path / "model")
    shutil.copy(SAMPLE_DIR / "sst2_train.tsv", tmp_path / "train.tsv")
    flag, value = {"model": ("--config_name", tmp_path / "model"), "data": ("--train_file", tmp_path / "train.tsv")}[inside]
    before = snapshot(tmp_path)
    code, err = run([*SHORT_RUN, flag, value, "--output_dir", tmp_path], capsys)
    one_line_error(code, err, f"--output_dir {tmp_path} holds {flag} {value}, which this run reads")
    code, err = run([*SHORT_RUN, flag, value, "--output_dir", value if inside == "model" else tmp_path], capsys)
    assert code == 2, err
    assert snapshot(tmp_path) == before


def test_a_finished_quickstart_reruns_with_the_same_command(tmp_path, capsys, caplog):
    command = [REPO_DIR / "recipes/sst2/quickstart.yaml", "--output_dir", tmp_path, "--num_train_epochs", 1,
               "--disable_tqdm", "true"]
    code, err = run(command, capsys)
    assert code == 0, err
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-19"]  # 600 rows / 32: one epoch
    code, err = run(command, capsys)
    assert code == 0, err
    assert f"Resuming from {tmp_path / 'checkpoint-19'}" in caplog.text
    assert json.loads((tmp_path / "eval_results.json").read_text())["eval_accuracy"] > 0
