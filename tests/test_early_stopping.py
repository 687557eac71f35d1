import json

import pytest
from conftest import REPO_DIR, run_main_with_output

import finetune.arguments
import finetune.cli
import finetune.trainer
import run_glue_sst2

# 64 sentences in batches of 32: 2 steps an epoch, 8 epochs planned, evaluated and saved at each epoch's end. At
# learning rate 0 the evaluation never improves on the first one.
FLAT = [str(REPO_DIR / "recipes/sst2/quickstart.yaml"), "--max_train_samples", "64", "--learning_rate", "0",
        "--do_predict", "false"]


def test_training_ends_early_once_the_evaluation_stops_improving_and_says_so(tmp_path, capsys):
    code, out, err = run_main_with_output(run_glue_sst2, [*FLAT, "--early_stopping_patience", "1",
                                                          "--output_dir", tmp_path], capsys)
    assert code == 0, err
    note = ("Training stopped early at epoch 2 of 8 (step 4 of 16): eval_loss did not improve for 1 evaluation in a "
            "row; the model is the best evaluation's (eval_loss")
    assert note in out and note in (tmp_path / "README.md").read_text()
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["best_global_step"] == 2


def test_a_resumed_run_keeps_its_patience_count(tmp_path, capsys, monkeypatch):
    argv = [*FLAT, "--early_stopping_patience", "2", "--output_dir", tmp_path]
    real_step = finetune.trainer.OrderedEvalTrainer.training_step

    def killed_after_two_epochs(self, *args, **kwargs):
        if self.state.global_step == 4:  # epoch 2 evaluated (no improvement: 1 of 2) and saved
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)
    monkeypatch.setattr(finetune.trainer.OrderedEvalTrainer, "training_step", killed_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        run_main_with_output(run_glue_sst2, argv, capsys)
    finetune.runs.release_all()
    monkeypatch.undo()
    code, out, err = run_main_with_output(run_glue_sst2, argv, capsys)
    assert code == 0, err
    # Counted afresh, the third and the fourth evaluation would stop it at epoch 4
    assert "stopped early at epoch 3 of 8 (step 6 of 16): eval_loss did not improve for 2 evaluations" in out


def parse(*flags):
    return finetune.cli.parse_args((finetune.arguments.TrainingArguments,), ["--output_dir", "out", "--do_train",
                                                                            *flags])[0]


def test_patience_sets_what_it_needs():
    args = parse("--early_stopping_patience", "3", "--eval_strategy", "epoch", "--save_strategy", "no",
                 "--metric_for_best_model", "accuracy")
    assert args.load_best_model_at_end and args.restore_callback_states_from_checkpoint
    assert args.save_strategy == "epoch" and args.greater_is_better
    args = parse("--early_stopping_patience", "3", "--eval_strategy", "steps", "--eval_steps", "50",
                 "--save_strategy", "no")
    assert (args.save_strategy, args.save_steps, args.metric_for_best_model) == ("steps", 50, "loss")


@pytest.mark.parametrize("flags, message", [
    (["--eval_strategy", "no"], "--eval_strategy no makes none: set --eval_strategy epoch or steps"),
    (["--eval_strategy", "epoch"], "--save_strategy steps does not match --eval_strategy epoch"),  # (its default)
    (["--eval_strategy", "epoch", "--early_stopping_patience", "0"], "must be at least 1 (got 0)"),
    (["--eval_strategy", "epoch", "--early_stopping_threshold", "-1"], "must be 0 or more"),
])
def test_combinations_that_cannot_stop_early_are_refused(flags, message):
    with pytest.raises(finetune.cli.InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse("--early_stopping_patience", "2", *flags)


def test_a_threshold_without_patience_is_refused():
    with pytest.raises(finetune.cli.InputError, match="--early_stopping_threshold applies to --early_stopping_pat"):
        parse("--early_stopping_threshold", "0.01")
