#!/usr/bin/env python
"""Fine-tune a BERT-family model for extractive question answering (SQuAD v1.1 / v2.0) with the Hugging Face Trainer.

    python run_squad.py recipes/squad/bert-base-uncased.yaml [--key value ...]
    python run_squad.py --model_name_or_path bert-base-uncased --dataset_name rajpurkar/squad \
        --do_train --do_eval --output_dir outputs/squad

Data: a Hub dataset (rajpurkar/squad, rajpurkar/squad_v2) or local files: the official nested SQuAD JSON
(dev-v1.1.json, optionally .gz) or flat .json/.jsonl/.csv rows (id, title, context, question, answers{text,
answer_start}); a --test_file needs no answers. Long contexts are split into windows of --max_seq_length tokens
overlapping by --doc_stride; answers are read back from the best start/end pair over all windows.
Writes: the model, eval_results.json (eval_exact_match, eval_f1; v2: eval_exact, eval_f1, eval_HasAns_*,
eval_NoAns_*, eval_best_f1, ...), eval_predictions.json (+ n-best, + null odds for v2), eval_failures.tsv and
eval_failures.html (the questions below F1 1, worst first: gold versus predicted, positions, windows) and
predict_predictions.json.
"""

import logging
from functools import partial

import datasets
import evaluate
from transformers import AutoModelForQuestionAnswering, set_seed

from finetune.arguments import ModelArguments
from finetune.cli import PhaseClock, parse_args, run_main, set_up_logging
from finetune.errors import InputError
from finetune.data import (REPO_DIR, cycle_collection_paused, first_rows, load_hub_split, load_squad_file,
                           map_in_processes, renamed_columns, squad_records)
from finetune.model_checks import warn_if_batch_exceeds_data
from finetune.modeling import check_max_seq_length, check_training_setup, load_model, load_tokenizer_and_config
from finetune.outputs import atomic_write_json, atomic_write_text, save_metrics
from finetune.qa_report import failure_html, failure_rows, failure_tsv, squad_intervals, squad_scoring
from finetune.runs import claim_output_dir
from finetune.tasks.question_answering import CARDS, METRICS, METRICS_V2, DataArguments, SquadTrainingArguments
from finetune.trainer import OrderedEvalTrainer, batch_collator, finish_run, train_and_save
from utils_qa import (
    CUSTOM_PIPELINES, check_qa_tokenizer, null_probability, postprocess_qa_predictions, prepare_eval_features,
    prepare_train_features,
)

logger = logging.getLogger(__name__)
SPLITS = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
MODEL_INPUT_EXCLUDED = ["example_id", "offset_mapping"]  # post-processing needs them, the model must not see them
NULL_THRESHOLD = "null_score_diff_threshold"  # the config.json key of a v2 model's no-answer threshold


def load_split(data_args, split):
    """Validated records of one split (see utils_qa for what counts as bad input)."""
    path = getattr(data_args, SPLITS[split])
    with_answers = split != "test"
    if path:
        return load_squad_file(path, with_answers, data_args.version_2_with_negative, data_args.columns())
    if not data_args.dataset_name:
        raise InputError(f"no data for the {split} split: give --{SPLITS[split]} or --dataset_name")
    rows, source = load_hub_split(data_args.dataset_name, data_args.dataset_config_name, split)
    return squad_records(renamed_columns(rows, data_args.columns()), source, with_answers,
                         data_args.version_2_with_negative)


def best_null_score_diff_threshold(null_odds, best_probability_threshold):
    """squad_v2's best threshold is a no-answer probability p (answer "" above it); the odds of the question at p
    make --null_score_diff_threshold pick the same answers (odds above it: ""). Exact, where converting p back to
    odds could land a rounding error on the wrong side of that question."""
    odds = [float(o) for o in null_odds.values()]
    at_or_below = [o for o in odds if null_probability(o) <= best_probability_threshold]
    return max(at_or_below) if at_or_below else min(odds) - 1.0  # p = 0: every question answered ""


class QuestionAnsweringTrainer(OrderedEvalTrainer):
    """A Trainer whose evaluation and prediction loops end with post-processing: the logits of all windows become
    one answer per question, scored with the squad / squad_v2 metric when the questions have answers. The
    output's `predictions` is then {id: answer}. qa_splits maps the metric prefix ("eval", "predict") to the
    (examples, features) of that split."""

    def __init__(self, *args, qa_splits, data_args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qa_splits, self.data_args = qa_splits, data_args
        self.null_odds = {}  # v2: metric prefix -> {id: null score - best answer score} of the last evaluation
        self.spans = {}  # metric prefix -> {id: (window, start, end)} of the last evaluation's answers
        version_2 = data_args.version_2_with_negative
        self.metric = evaluate.load(str(REPO_DIR / "metrics" / ("squad_v2" if version_2 else "squad")))

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        output = super().evaluation_loop(dataloader, description, prediction_loss_only=False,
                                         ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        examples, features = self.qa_splits[metric_key_prefix]
        args = self.data_args
        answers, null_odds, nbest, spans = postprocess_qa_predictions(
            examples, features, output.predictions, version_2_with_negative=args.version_2_with_negative,
            n_best_size=args.n_best_size, max_answer_length=args.max_answer_length,
            null_score_diff_threshold=args.null_score_diff_threshold, return_null_odds=True, return_nbest=True,
            return_spans=True, independent_argmax=args.independent_argmax,
        )
        self.null_odds[metric_key_prefix], self.spans[metric_key_prefix] = null_odds, spans
        if self.is_world_process_zero():
            written = {"predictions": answers, "nbest_predictions": nbest, "null_odds": null_odds}
            for name, values in written.items():
                if values is not None:
                    atomic_write_json(f"{self.args.output_dir}/{metric_key_prefix}_{name}.json", values,
                                      entry_per_line=True)
        if "answers" in examples.column_names:
            predictions = [{"id": qid, "prediction_text": text} for qid, text in answers.items()]
            if args.version_2_with_negative:
                for prediction in predictions:
                    prediction["no_answer_probability"] = float(null_probability(null_odds[prediction["id"]]))
            references = [{"id": qid, "answers": a} for qid, a in zip(examples["id"], examples["answers"])]
            scores = self.metric.compute(predictions=predictions, references=references)
            output.metrics.update({f"{metric_key_prefix}_{name}": value for name, value in scores.items()})
        return output._replace(predictions=answers)


def get_datasets(data_args, training_args):
    """{split: Dataset of validated questions} for the splits this run needs, each cut to its limit."""
    wanted = {"train": training_args.do_train, "validation": training_args.do_eval, "test": training_args.do_predict}
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
              "test": data_args.max_predict_samples}
    examples = {}
    with cycle_collection_paused():
        for split in (s for s, needed in wanted.items() if needed):
            examples[split] = first_rows(datasets.Dataset.from_list(load_split(data_args, split)), limits[split])
    if not examples:
        raise InputError("nothing to do: pass --do_train, --do_eval and/or --do_predict")
    return examples


def get_model(model_args, data_args, training_args, resume_from):
    config, tokenizer = load_tokenizer_and_config(model_args)
    check_max_seq_length(data_args.max_seq_length, tokenizer, config)
    check_qa_tokenizer(tokenizer, data_args.max_seq_length, data_args.doc_stride, data_args.max_query_length)
    if training_args.do_train:
        # a no-answer threshold stored with the base model does not describe the model this run trains
        config.__dict__.pop(NULL_THRESHOLD, None)
    if data_args.null_score_diff_threshold is None:
        data_args.null_score_diff_threshold = getattr(config, NULL_THRESHOLD, None) or 0.0
    config.custom_pipelines = CUSTOM_PIPELINES  # saved with the model: pipeline() finds utils_qa.py by it
    model = load_model(model_args, AutoModelForQuestionAnswering, config, trains=training_args.do_train)
    if training_args.do_train:
        check_training_setup(training_args, model, resume_from)
    return tokenizer, model


def save_pipeline_code(trainer):
    """utils_qa.py beside the trained model, so that the model folder (and its Hub repository) answers questions
    through transformers' pipeline() without this repository."""
    if trainer.is_world_process_zero():
        atomic_write_text(f"{trainer.args.output_dir}/utils_qa.py", (REPO_DIR / "utils_qa.py").read_text())


def store_null_threshold(trainer, threshold):
    """A v2 model keeps the threshold of its best F1 in config.json (it travels to the Hub), for later evaluations,
    predictions and the pipeline; only for the model this run trained: an evaluation never rewrites the config of
    a model it did not make."""
    if not trainer.args.do_train:
        return "not stored: this run did not train the model"
    config = trainer.model.config
    setattr(config, NULL_THRESHOLD, threshold)
    atomic_write_text(f"{trainer.args.output_dir}/config.json", config.to_json_string())
    return "stored in config.json"


def windows(examples, tokenizer, data_args, training_args):
    """Overlapping windows of each context: for training with answer positions, for evaluation with ids and
    offsets."""
    window_args = {"tokenizer": tokenizer, "max_seq_length": data_args.max_seq_length,
                   "doc_stride": data_args.doc_stride, "max_query_length": data_args.max_query_length,
                   "pad_to_max_length": data_args.pad_to_max_length, "first_window_only": data_args.first_window_only,
                   "mask_question_attention": data_args.mask_question_attention}
    features = {}
    with training_args.main_process_first(desc="tokenization"):
        for split, dataset in examples.items():
            prepare = prepare_train_features if split == "train" else prepare_eval_features
            features[split] = map_in_processes(dataset, partial(prepare, **window_args),
                                               data_args.preprocessing_num_workers,
                                               remove_columns=dataset.column_names, desc=f"Windows for {split}")
            logger.info("%s: %d questions -> %d windows", split, len(dataset), len(features[split]))
    return features


def evaluate_and_report(trainer, examples, data_args):
    """Metrics with their 95% intervals (eval_results.json), eval_predictions.json, the failure report, and for v2
    the threshold that gives the best F1."""
    output = trainer.predict(trainer.eval_dataset, metric_key_prefix="eval")
    intervals = squad_intervals(examples, output.predictions, data_args.version_2_with_negative)
    metrics = {**output.metrics, **intervals, "eval_samples": len(examples)}
    trainer.log(metrics)
    trainer.log_metrics("eval", metrics)
    if trainer.is_world_process_zero():
        if data_args.version_2_with_negative:
            threshold = best_null_score_diff_threshold(trainer.null_odds["eval"], metrics["eval_best_f1_thresh"])
            print(f"SQuAD v2: --null_score_diff_threshold {threshold!r} gives this evaluation's best F1 "
                  f"({metrics['eval_best_f1']:.2f}; now {metrics['eval_f1']:.2f} at "
                  f"{data_args.null_score_diff_threshold!r}); {store_null_threshold(trainer, threshold)}")
        scores = squad_scoring(data_args.version_2_with_negative)
        features = trainer.qa_splits["eval"][1]  # with the offsets the model does not see
        rows = failure_rows(examples, features, output.predictions, trainer.spans["eval"], trainer.processing_class,
                            scores.f1_score)
        atomic_write_text(f"{trainer.args.output_dir}/eval_failures.tsv", failure_tsv(rows))
        atomic_write_text(f"{trainer.args.output_dir}/eval_failures.html", failure_html(rows, metrics, len(examples)))
        logger.info("%d questions below F1 1 written to eval_failures.tsv and eval_failures.html", len(rows))
        save_metrics(trainer.args.output_dir, "eval", metrics)
    return metrics


def main(argv=None):
    clock = PhaseClock(from_process_start=argv is None)  # in-process callers (tests) count from here
    clock.mark("imports")  # Python, torch, transformers, datasets: most of a run's start-up
    model_args, data_args, training_args = parse_args((ModelArguments, DataArguments, SquadTrainingArguments), argv)
    set_up_logging(training_args)
    data_args.check()
    training_args.check_best_metric(METRICS_V2 if data_args.version_2_with_negative else METRICS)
    clock.mark("arguments")

    examples = get_datasets(data_args, training_args)  # read and validated before any model is built or file written
    resume_from = claim_output_dir(training_args, model_args, data_args)
    clock.mark("data")

    set_seed(training_args.seed)
    tokenizer, model = get_model(model_args, data_args, training_args, resume_from)
    clock.mark("model")

    features = windows(examples, tokenizer, data_args, training_args)
    if training_args.do_train:
        warn_if_batch_exceeds_data(training_args, len(features["train"]))
    clock.mark("windows")

    if training_args.eval_accumulation_steps is None:
        # Move logits to the CPU after every batch, so evaluation memory on the accelerator stays one batch.
        training_args.eval_accumulation_steps = 1
    qa_splits = {prefix: (examples[split], features[split])
                 for prefix, split in (("eval", "validation"), ("predict", "test")) if split in features}
    trainer = QuestionAnsweringTrainer(
        model=model,
        args=training_args,
        train_dataset=features.get("train"),
        eval_dataset=features["validation"].remove_columns(MODEL_INPUT_EXCLUDED) if "validation" in features else None,
        processing_class=tokenizer,
        dynamic_lengths=not data_args.pad_to_max_length,
        data_collator=batch_collator(tokenizer, training_args, data_args.pad_to_max_length),
        qa_splits=qa_splits,
        data_args=data_args,
    )
    all_metrics = {}
    if training_args.do_train:
        all_metrics.update(train_and_save(trainer, resume_from, train_samples=len(features["train"])))
        save_pipeline_code(trainer)
        clock.mark("train")
    if training_args.do_eval:
        all_metrics.update(evaluate_and_report(trainer, examples["validation"], data_args))
        clock.mark("evaluate")
    if training_args.do_predict:  # predict_predictions.json ({id: answer}) and predict_nbest_predictions.json
        trainer.predict(features["test"].remove_columns(MODEL_INPUT_EXCLUDED), metric_key_prefix="predict")
        logger.info("Answers to %d questions written to predict_predictions.json", len(examples["test"]))
        clock.mark("predict")
    finish_run(trainer, CARDS[data_args.version_2_with_negative], model_args, data_args, all_metrics, clock)


if __name__ == "__main__":
    run_main(main)
