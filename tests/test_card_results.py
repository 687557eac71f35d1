"""The card's results lines: a metric with its interval and the number of evaluated examples, and the sentence on
early stopping."""

from finetune.card import early_stop_note, result_line
from finetune.tasks.text_classification import glue_task

SST2 = glue_task("sst2").card


def test_a_metric_is_quoted_with_its_interval_and_example_count():
    metrics = {"eval_accuracy": 0.904, "eval_accuracy_ci_low": 0.884, "eval_accuracy_ci_high": 0.9232,
               "eval_samples": 872}
    line = result_line(SST2, "accuracy", "Accuracy", 0.904, metrics)
    assert line == "- Accuracy: 0.9040 (95% CI 0.8840–0.9232, 872 sentences)"
    assert result_line(SST2, "accuracy", "Accuracy", 0.904, {"eval_accuracy": 0.904}) == "- Accuracy: 0.9040"


def test_early_stopping_is_told_only_when_it_cut_the_training_short():
    state = {"global_step": 30, "max_steps": 100, "epoch": 3.0, "num_train_epochs": 10, "best_metric": 0.91,
             "best_global_step": 10, "stateful_callbacks": {"EarlyStoppingCallback": {
                 "args": {"early_stopping_patience": 2}, "attributes": {"early_stopping_patience_counter": 2}}}}
    assert early_stop_note(state, "accuracy") == (
        "Training stopped early at epoch 3 of 10 (step 30 of 100): eval_accuracy did not improve for 2 evaluations "
        "in a row; the model is the best evaluation's (eval_accuracy 0.91 at step 10).")
    assert early_stop_note({**state, "global_step": 100}, "accuracy") is None  # it ran to its planned end
    waiting = {"EarlyStoppingCallback": {"args": {"early_stopping_patience": 2},
                                         "attributes": {"early_stopping_patience_counter": 1}}}
    assert early_stop_note({**state, "stateful_callbacks": waiting}) is None
    assert early_stop_note({"global_step": 5, "max_steps": 10}) is None
