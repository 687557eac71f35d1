"""A run whose loss or weights become NaN/inf stops with one error line and a non-zero exit, keeps the checkpoints
saved before, and writes no model, checkpoint or results of the diverged model."""

import pytest
import torch
from conftest import REPO_DIR, run_main_in_process
from safetensors.torch import load_file

import finetune.trainer
import run_glue_sst2
import run_squad

SST2 = str(REPO_DIR / "recipes/sst2/quickstart.yaml")
SQUAD = str(REPO_DIR / "recipes/squad/quickstart.yaml")
QUIET = ["--disable_tqdm", "true"]
CHECKPOINTS = ["--save_strategy", "steps", "--save_total_limit", "2"]  # the last two kept: all that these runs save


def written(folder):
    """What a run wrote into its output folder, its hidden bookkeeping of the run aside."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def error_lines(err):
    return [line for line in err.splitlines() if line.startswith("error:")]


def inject_nan_before_step(monkeypatch, step):
    """Puts a NaN into one weight before training step `step` (counted from 1): that step's loss is NaN and its
    update spreads NaN through the weights, as a diverging run does, at a step the test chooses."""
    original = finetune.trainer.OrderedEvalTrainer.training_step

    def training_step(self, model, *args, **kwargs):
        if self.state.global_step == step - 1:
            with torch.no_grad():
                next(self.model.parameters()).view(-1)[0] = float("nan")
        return original(self, model, *args, **kwargs)

    monkeypatch.setattr(finetune.trainer.OrderedEvalTrainer, "training_step", training_step)


def test_too_high_learning_rate_stops_the_run_before_anything_is_written(tmp_path, capsys):
    # The CPU's default logging_nan_inf_filter logs this run's loss as 0 from step 20 on: the weights tell.
    code, err = run_main_in_process(run_glue_sst2, [SST2, "--learning_rate", "1e6", "--output_dir", tmp_path, *QUIET],
                                    capsys)
    assert code == 2
    [line] = error_lines(err)
    assert "training diverged" in line and "within the first 10 steps" in line and "--learning_rate 1e+06" in line
    assert "this run saved no model" in line and "a lower --learning_rate" in line
    assert written(tmp_path) == []  # no model, checkpoint, results, predictions or card


@pytest.mark.parametrize("nan_step, logging_steps, caught_at, good_checkpoints", [
    (10, 10, "between steps 8 and 10", [4, 8]),  # found at a logging step, between two saves
    (6, 100, "between steps 4 and 8", [4]),  # found by the save at step 8: no log before it
])
def test_checkpoints_before_divergence_are_kept_and_none_after(tmp_path, capsys, monkeypatch, nan_step, logging_steps,
                                                              caught_at, good_checkpoints):
    inject_nan_before_step(monkeypatch, nan_step)
    code, err = run_main_in_process(run_glue_sst2, [
        SST2, "--output_dir", tmp_path, *CHECKPOINTS, "--save_steps", 4, "--logging_steps", logging_steps,
        "--max_steps", 16, *QUIET], capsys)
    assert code == 2
    [line] = error_lines(err)
    assert caught_at in line and f"checkpoint-{good_checkpoints[-1]} is the last good checkpoint" in line
    assert written(tmp_path) == [f"checkpoint-{n}" for n in good_checkpoints]
    for n in good_checkpoints:
        checkpoint = tmp_path / f"checkpoint-{n}"
        assert (checkpoint / "trainer_state.json").exists()  # complete: a run can resume from it
        weights = load_file(checkpoint / "model.safetensors")
        assert all(tensor.isfinite().all() for tensor in weights.values())


def test_squad_run_with_too_high_learning_rate_fails(tmp_path, capsys):
    code, err = run_main_in_process(run_squad, [SQUAD, "--learning_rate", "1e6", "--output_dir", tmp_path,
                                                "--num_train_epochs", 2, "--logging_steps", 5, *QUIET], capsys)
    assert code == 2
    [line] = error_lines(err)
    assert "training diverged" in line and "--learning_rate 1e+06" in line
    assert written(tmp_path) == []


def test_squad_evaluation_during_training_of_a_diverged_model_writes_nothing(tmp_path, capsys, monkeypatch):
    # Evaluation during training writes eval_predictions.json; the epoch's end is checked before it.
    inject_nan_before_step(monkeypatch, 2)
    code, err = run_main_in_process(run_squad, [SQUAD, "--output_dir", tmp_path, "--num_train_epochs", 1,
                                                "--logging_steps", 100, "--eval_strategy", "epoch", *QUIET], capsys)
    assert code == 2 and len(error_lines(err)) == 1
    assert written(tmp_path) == []


def test_a_normal_run_is_checked_only_where_it_logs_or_saves(tmp_path, capsys, monkeypatch):
    checked_at = []
    original = finetune.trainer.OrderedEvalTrainer.check_finite

    def check_finite(self):
        checked_at.append(self.state.global_step)
        return original(self)

    monkeypatch.setattr(finetune.trainer.OrderedEvalTrainer, "check_finite", check_finite)
    code, err = run_main_in_process(run_glue_sst2, [
        SST2, "--output_dir", tmp_path, "--max_steps", 12, "--logging_steps", 5, *CHECKPOINTS, "--save_steps", 6,
        *QUIET], capsys)
    assert code == 0, err[-2000:]
    assert sorted(set(checked_at)) == [5, 6, 10, 12]  # logs at 5 and 10, saves at 6 and 12: no check per step
    for name in ("model.safetensors", "checkpoint-6/model.safetensors", "checkpoint-12/model.safetensors",
                 "train_results.json", "eval_results.json", "predict_results.tsv"):
        assert (tmp_path / name).exists(), name


def test_a_nan_loss_stops_the_run_though_the_logged_loss_hides_it(tmp_path, capsys, monkeypatch):
    # A NaN added to the loss leaves its gradients (and so the weights) finite; the CPU's logging_nan_inf_filter
    # leaves it out of the logged loss: only the check of each step's own loss sees it.
    original = finetune.trainer.OrderedEvalTrainer.compute_loss

    def compute_loss(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        return loss + float("nan") if self.state.global_step == 2 else loss

    monkeypatch.setattr(finetune.trainer.OrderedEvalTrainer, "compute_loss", compute_loss)
    code, err = run_main_in_process(run_glue_sst2, [SST2, "--output_dir", tmp_path, "--max_steps", 10,
                                                    "--logging_steps", 5, *QUIET], capsys)
    assert code == 2
    [line] = error_lines(err)
    assert "within the first 5 steps" in line
    assert written(tmp_path) == []


def test_a_zero_adam_epsilon_is_named_first_among_the_causes(tmp_path, capsys):
    code, err = run_main_in_process(run_glue_sst2, [SST2, "--adam_epsilon", "0", "--output_dir", tmp_path, *QUIET],
                                    capsys)
    assert code == 2
    [line] = error_lines(err)
    assert "training diverged" in line and "retry with --adam_epsilon 1e-8 (with 0, Adam divides by zero" in line
