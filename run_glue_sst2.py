#!/usr/bin/env python
"""Fine-tune a BERT-family model for text classification with the Hugging Face Trainer: GLUE SST-2 by default, any
GLUE task (--task_name), or your own labelled texts and sentence pairs (--task_name custom).

    python run_glue_sst2.py recipes/sst2/bert-base-cased.yaml [--key value ...]
    python run_glue_sst2.py recipes/glue/mnli.yaml
    python run_glue_sst2.py --model_name_or_path bert-base-cased --task_name custom --train_file train.csv \
        --validation_file dev.csv --do_train --do_eval --output_dir outputs/mine

Data: a Hub dataset (nyu-mll/glue and its task, or any dataset with text and label columns) or local files (.tsv in
GLUE's layout, .csv, .json, .jsonl, each optionally .gz; a .txt of one text per line for prediction). Labels: names,
integers, or scores (a regression); your own are read from the training data, or fixed with --label_names.
Writes: the model (its config names the labels), eval_results.json (the task's metrics; per class for a
classifier), eval_failures.tsv and eval_failures.html (mistakes, most confident first), eval_predictions.tsv (every
validation example; compare_runs.py compares two runs by it) and predict_results.tsv. MNLI's mismatched validation
set writes the same with the suffix _mm.
"""

import logging

import numpy as np
from transformers import set_seed

from finetune.arguments import ModelArguments
from finetune.cli import PhaseClock, parse_args, run_main, set_up_logging
from finetune.data import cycle_collection_paused, map_in_processes
from finetune.model_checks import check_text_room, warn_if_batch_exceeds_data
from finetune.modeling import check_max_seq_length, check_training_setup, load_model, load_tokenizer_and_config
from finetune.outputs import atomic_write_text, save_metrics
from finetune.runs import claim_output_dir
from finetune.stats import interval_metrics
from finetune.tasks import classification_reports as reports
from finetune.tasks.classification_data import (ClassificationTrainingArguments, DataArguments, get_datasets,
                                                 resolve_task, saved_config)
from finetune.tasks.text_classification import AUTO_CLASS
from finetune.trainer import OrderedEvalTrainer, batch_collator, finish_run, train_and_save

logger = logging.getLogger(__name__)


def get_model(model_args, data_args, training_args, task, resume_from):
    """Tokenizer and classifier. The label names travel with the saved config, so pipeline() shows them."""
    config, tokenizer = load_tokenizer_and_config(model_args, **task.config_overrides())
    check_max_seq_length(data_args.max_seq_length, tokenizer, config)
    check_text_room(data_args.max_seq_length, tokenizer, task.pair)
    model = load_model(model_args, AUTO_CLASS, config, trains=training_args.do_train)
    if training_args.do_train:
        check_training_setup(training_args, model, resume_from)
    return tokenizer, model


def tokenize(splits, tokenizer, data_args, training_args):
    def encode(batch):
        padding = "max_length" if data_args.pad_to_max_length else False
        return tokenizer(batch["sentence"], batch.get("sentence_pair"), truncation=True,
                         max_length=data_args.max_seq_length, padding=padding)

    with training_args.main_process_first(desc="tokenization"):
        return {split: map_in_processes(dataset, encode, data_args.preprocessing_num_workers,
                                        remove_columns=[c for c in dataset.column_names if c != "label"],
                                        desc=f"Tokenizing {split}")
                for split, (dataset, _) in splits.items()}


def evaluate_and_report(trainer, features, dataset, suffix, task):
    """One prediction pass gives the metrics, the failure report (eval_failures.tsv and .html) and every example's
    prediction (eval_predictions.tsv); MNLI's mismatched set adds _mm to each name."""
    output = trainer.predict(features, metric_key_prefix="eval")
    metrics = {f"{name}{suffix}": value for name, value in {**output.metrics, "eval_samples": len(features)}.items()}
    intervals = task.intervals(output.predictions, np.asarray(dataset["label"]))  # from these predictions: no new pass
    metrics.update(interval_metrics({f"{name}{suffix}": interval for name, interval in intervals.items()}))
    trainer.log(metrics)
    trainer.log_metrics("eval", metrics)
    if not trainer.is_world_process_zero():
        return metrics
    title = task.glue.title.removeprefix("GLUE ") if task.glue else "Text classification"
    files, mistakes = reports.evaluation_reports(dataset, output.predictions, task, title)
    for name, text in files.items():
        stem, extension = name.rsplit(".", 1)
        atomic_write_text(f"{trainer.args.output_dir}/{stem}{suffix}.{extension}", text)
    logger.info("%d %s written to eval_failures%s.tsv and .html (open it in a browser); every prediction to "
                "eval_predictions%s.tsv", mistakes, "examples" if task.regression else "misclassified examples",
                suffix, suffix)
    per_class = task.per_class(output.predictions.argmax(-1), np.asarray(dataset["label"]))
    if per_class:
        print("Per class (precision / recall / F1, support): " + "; ".join(
            f"{name} {s['precision']:.3f} / {s['recall']:.3f} / {s['f1']:.3f}, {s['support']}"
            for name, s in per_class.items()))
        metrics[f"eval_per_class{suffix}"] = per_class
    return metrics


def predict(trainer, features, dataset, task):
    """predict_results.tsv: index, predicted label (a regression: score), its probability, the texts."""
    logits = trainer.predict(features, metric_key_prefix="predict").predictions
    if trainer.is_world_process_zero():
        atomic_write_text(f"{trainer.args.output_dir}/predict_results.tsv",
                          reports.prediction_report(dataset, logits, task))
        logger.info("Predictions for %d examples written to predict_results.tsv", len(dataset))


def main(argv=None):
    clock = PhaseClock(from_process_start=argv is None)  # in-process callers (tests) count from here
    clock.mark("imports")  # Python, torch, transformers, datasets: most of a run's start-up
    model_args, data_args, training_args = parse_args((ModelArguments, DataArguments, ClassificationTrainingArguments),
                                                       argv)
    if data_args.pad_to_max_length is None:
        data_args.pad_to_max_length = training_args.replays_cuda_graphs  # graphs need one shape per batch size
    set_up_logging(training_args)
    task = resolve_task(data_args, training_args, saved_config(model_args))  # None: labels read from the data
    clock.mark("arguments")

    with cycle_collection_paused():  # read and validated before any model is built or file written
        splits, task = get_datasets(task, data_args, training_args)
    training_args.check_best_metric(task.metric_names())
    resume_from = claim_output_dir(training_args, model_args, data_args)
    clock.mark("data")

    set_seed(training_args.seed)
    tokenizer, model = get_model(model_args, data_args, training_args, task, resume_from)
    clock.mark("model")

    features = tokenize(splits, tokenizer, data_args, training_args)
    if training_args.do_train:
        warn_if_batch_exceeds_data(training_args, len(features["train"]))
    clock.mark("tokenize")

    evaluations = [split for split in splits if split != "train" and not split.startswith("test")]
    trainer = OrderedEvalTrainer(
        model=model,
        args=training_args,
        train_dataset=features.get("train"),
        eval_dataset=features[evaluations[0]] if evaluations else None,
        processing_class=tokenizer,
        dynamic_lengths=not data_args.pad_to_max_length,
        data_collator=batch_collator(tokenizer, training_args, data_args.pad_to_max_length),
        compute_metrics=task.compute_metrics,
    )
    all_metrics = {}
    if training_args.do_train:
        all_metrics.update(train_and_save(trainer, resume_from, train_samples=len(features["train"])))
        clock.mark("train")
    if training_args.do_eval:
        evaluation = {}
        for split in evaluations:
            dataset, suffix = splits[split]
            evaluation.update(evaluate_and_report(trainer, features[split], dataset, suffix, task))
        if trainer.is_world_process_zero():
            save_metrics(training_args.output_dir, "eval", evaluation)
        all_metrics.update(evaluation)
        clock.mark("evaluate")
    test_split = next((split for split in splits if split.startswith("test")), None)
    if test_split:
        predict(trainer, features[test_split], splits[test_split][0], task)
        clock.mark("predict")
    finish_run(trainer, task.card, model_args, data_args, all_metrics, clock)


if __name__ == "__main__":
    run_main(main)
