"""The output folder's checkpoints: only those the run record lists are resumed or rotated away, each checked before
it is resumed; a lock removed under a running run stops it before its next write; a full disk while torch.save
writes is one line."""

import json
import shutil

import pytest
from conftest import SAMPLE_DIR, TINY_MODEL, run_main_in_process

import finetune.runs
import run_glue_sst2

# 600 rows / batch 64 = 10 steps an epoch; a checkpoint each 4 steps: checkpoint-4, -8 and -12 in 12 steps
RUN = [*TINY_MODEL, "--train_file", SAMPLE_DIR / "sst2_train.tsv", "--do_train", "--save_strategy", "steps",
       "--save_steps", 4, "--per_device_train_batch_size", 64, "--max_seq_length", 32, "--report_to", "none",
       "--disable_tqdm", "true", "--learning_rate", 1e-3]


def train(output_dir, capsys, *extra):
    return run_main_in_process(run_glue_sst2, [*RUN, "--output_dir", output_dir, *map(str, extra)], capsys)


@pytest.fixture(scope="module")
def eight_steps(tmp_path_factory):
    """A 12-step run with checkpoint-4, -8 and -12, to copy as if cut off after step 8."""
    output_dir = tmp_path_factory.mktemp("eight") / "out"
    run_glue_sst2.main([str(a) for a in [*RUN, "--output_dir", output_dir, "--max_steps", 12]])
    finetune.runs.release_all()
    return output_dir


def copy_run(eight_steps, tmp_path):
    """The run as a crash after step 8 leaves it: checkpoint-4 and -8, no final model."""
    output_dir = tmp_path / "out"
    shutil.copytree(eight_steps, output_dir)
    shutil.rmtree(output_dir / "checkpoint-12")
    for name in ("model.safetensors", "train_results.json", "all_results.json", "trainer_state.json"):
        (output_dir / name).unlink(missing_ok=True)
    return output_dir


def resumed_step(err):
    found = [line for line in err.splitlines() if "Resuming from" in line]
    return found[-1].split("checkpoint-")[-1].split()[0].rstrip(")") if found else None


def test_the_record_lists_the_checkpoints_the_run_saved(eight_steps):
    record = json.loads((eight_steps / ".run.json").read_text())
    assert record["checkpoints"] == ["checkpoint-4", "checkpoint-8", "checkpoint-12"]


def test_a_damaged_checkpoint_is_skipped_with_a_line_and_kept(eight_steps, tmp_path, capsys, caplog):
    output_dir = copy_run(eight_steps, tmp_path)
    optimizer = output_dir / "checkpoint-8" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])  # cut off
    code, err = train(output_dir, capsys, "--max_steps", 12)
    assert code == 0, err
    assert "checkpoint-8: optimizer.pt is truncated or damaged; it is kept as it is" in caplog.text
    assert resumed_step(caplog.text) == "4"
    # resumed from step 4, the run saved step 8 again: the damaged checkpoint was replaced by a good one, not deleted
    assert finetune.runs.checkpoint_problem(output_dir / "checkpoint-8") is None


def test_a_truncated_safetensors_is_named(eight_steps, tmp_path):
    output_dir = copy_run(eight_steps, tmp_path)
    weights = output_dir / "checkpoint-8" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert finetune.runs.checkpoint_problem(output_dir / "checkpoint-8").startswith("model.safetensors cannot be read")
    assert finetune.runs.checkpoint_problem(output_dir / "checkpoint-4") is None


def test_a_checkpoint_copied_in_from_another_run_is_not_resumed(eight_steps, tmp_path, capsys, caplog):
    output_dir = copy_run(eight_steps, tmp_path)
    shutil.copytree(output_dir / "checkpoint-8", output_dir / "checkpoint-9")  # as if another run's, copied in
    code, err = train(output_dir, capsys, "--max_steps", 12)
    assert code == 0, err
    assert "checkpoint-9: this run's .run.json does not list it" in caplog.text and resumed_step(caplog.text) == "8"


def test_rotation_deletes_only_the_runs_own_checkpoints(eight_steps, tmp_path, capsys):
    output_dir = copy_run(eight_steps, tmp_path)
    (output_dir / "checkpoint-1").mkdir()
    (output_dir / "checkpoint-1" / "notes.txt").write_text("mine")  # a folder of the user's, named like one
    code, err = train(output_dir, capsys, "--max_steps", 12, "--save_total_limit", 1)
    assert code == 0, err
    assert (output_dir / "checkpoint-1" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-12"]
    assert json.loads((output_dir / ".run.json").read_text())["checkpoints"] == ["checkpoint-12"]


def test_a_lock_removed_while_training_stops_the_run_before_it_writes(tmp_path, capsys, monkeypatch):
    output_dir = tmp_path / "out"
    real_save = run_glue_sst2.OrderedEvalTrainer._save_checkpoint if hasattr(
        run_glue_sst2, "OrderedEvalTrainer") else None
    assert real_save is not None

    def remove_lock_then_save(self, model, trial):
        (output_dir / ".run.lock").unlink()  # someone deletes it while the run trains
        return real_save(self, model, trial)

    monkeypatch.setattr(run_glue_sst2.OrderedEvalTrainer, "_save_checkpoint", remove_lock_then_save)
    code, err = train(output_dir, capsys, "--max_steps", 4)
    assert code == 2 and "its lock .run.lock was removed while this run was running" in err.strip().splitlines()[-1]
    assert not (output_dir / "checkpoint-4").exists()


def test_a_full_disk_while_torch_saves_is_one_line(tmp_path, capsys, monkeypatch):
    import transformers

    def full_disk(self, output_dir):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 1536 vs 1472")

    monkeypatch.setattr(transformers.Trainer, "_save_optimizer_and_scheduler", full_disk)
    code, err = train(tmp_path / "out", capsys, "--max_steps", 4)
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error: the disk is full") and "Traceback" not in err


def evaluate(model, output_dir, capsys, data="sst2_dev.tsv", *extra):
    return run_main_in_process(run_glue_sst2, [
        "--model_name_or_path", model, "--validation_file", SAMPLE_DIR / data, "--do_eval", "--max_seq_length", 32,
        "--report_to", "none", "--output_dir", output_dir, *extra], capsys)


def test_an_evaluation_writes_only_into_its_own_models_folder_or_a_new_one(eight_steps, tmp_path, capsys):
    trained = tmp_path / "trained"
    shutil.copytree(eight_steps, trained)
    other_model = eight_steps / "checkpoint-12"
    code, err = evaluate(other_model, trained, capsys)
    assert code == 2 and "holds the results of the run that trained a model there" in err.strip().splitlines()[-1]
    assert not (trained / "eval_results.json").exists()
    assert evaluate(trained, trained, capsys)[0] == 0  # its own model: the results go beside it
    assert evaluate(trained, trained, capsys)[0] == 0  # and again: a re-evaluation
    (tmp_path / "other_dev.tsv").write_text((SAMPLE_DIR / "sst2_dev.tsv").read_text().replace("dull", "flat"))
    code, err = evaluate(trained, trained, capsys, tmp_path / "other_dev.tsv")
    assert code == 2 and "holds the results of another evaluation: validation" in err
    assert evaluate(trained, trained, capsys, tmp_path / "other_dev.tsv", "--overwrite_output_dir")[0] == 0


def test_results_without_a_record_are_not_replaced(eight_steps, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "eval_results.json").write_text('{"eval_accuracy": 0.99}')
    code, err = evaluate(eight_steps / "checkpoint-12", folder, capsys)
    assert code == 2 and "a run that left no record of its model and data" in err
    assert (folder / "eval_results.json").read_text() == '{"eval_accuracy": 0.99}'
    fresh = tmp_path / "fresh"
    assert evaluate(eight_steps / "checkpoint-12", fresh, capsys)[0] == 0
    assert evaluate(eight_steps / "checkpoint-12", fresh, capsys)[0] == 0  # the same evaluation again


@pytest.mark.parametrize("auto_class", ["AutoModelForSequenceClassification", "AutoModelForQuestionAnswering"])
def test_a_model_folder_with_truncated_weights_is_one_line(tmp_path, capsys, auto_class):
    from conftest import run_main_with_output, saved_tiny_model

    import utils_qa

    folder = saved_tiny_model(tmp_path / "model", auto_class)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a download cut short
    if auto_class == "AutoModelForQuestionAnswering":
        with pytest.raises(utils_qa.InputError, match="truncated or damaged"):
            utils_qa.qa_pipeline(str(folder))
        return
    code, out, err = run_main_with_output(run_glue_sst2, [
        "--model_name_or_path", folder, "--validation_file", SAMPLE_DIR / "sst2_dev.tsv", "--do_eval",
        "--output_dir", tmp_path / "out"], capsys)
    assert code == 2 and "a weights file is truncated or damaged" in err.strip().splitlines()[-1]
