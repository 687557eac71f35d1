#!/usr/bin/env python
"""Fine-tune a BERT-family model on GLUE SST-2 (binary sentiment) with the Hugging Face Trainer.

    python run_glue_sst2.py recipes/sst2/bert-base-cased.yaml [--key value ...]
    python run_glue_sst2.py --model_name_or_path bert-base-cased --dataset_name nyu-mll/glue \
        --dataset_config_name sst2 --do_train --do_eval --output_dir outputs/sst2

Data: a Hub dataset (nyu-mll/glue + sst2, or any dataset with a sentence/text and label column) or local files
(.tsv in GLUE's layout, .csv, .json, .jsonl, each optionally .gz; a .txt of one sentence per line for prediction).
Writes: the model, eval_results.json (eval_accuracy, eval_f1), eval_failures.tsv and eval_failures.html
(misclassified sentences, most confident first; the page sorts and filters them in a browser), eval_predictions.tsv
(every validation sentence with its prediction; compare_runs.py compares two runs by it) and predict_results.tsv.
"""

import logging
import re
from dataclasses import dataclass, field

import datasets
import evaluate
import numpy as np
from transformers import AutoModelForSequenceClassification, set_seed

from finetune.arguments import ModelArguments, TrainingArguments
from finetune.card import TaskCard
from finetune.cli import InputError, PhaseClock, parse_args, run_main, set_up_logging
from finetune.data import (REPO_DIR, cycle_collection_paused, first_rows, load_hub_split, map_in_processes,
                           read_records, split_suffix, tsv_cell)
from finetune.modeling import check_max_seq_length, check_training_setup, load_model, load_tokenizer_and_config
from finetune.outputs import atomic_write_text, save_metrics
from finetune.report import failure_page
from finetune.runs import claim_output_dir
from finetune.trainer import OrderedEvalTrainer, batch_collator, finish_run, train_and_save

logger = logging.getLogger(__name__)
LABEL_NAMES = ["negative", "positive"]  # SST-2's order: 0 = negative, 1 = positive
TEXT_COLUMNS = ("sentence", "text")
UNLABELED = -1  # GLUE's test split marks its hidden labels with -1
CARD = TaskCard(
    name="sst2", pipeline_tag="text-classification", task_name="Text Classification", dataset_id="nyu-mll/glue",
    dataset_config="sst2", dataset_title="GLUE SST-2", metrics=(("accuracy", "Accuracy"), ("f1", "F1")),
    tags=("text-classification", "sst2", "bert"),
    usage="""from transformers import pipeline

classifier = pipeline("text-classification", model="{repo_id}")
print(classifier("a gripping, beautifully acted film"))
# [{'label': 'positive', 'score': ...}]""",
)


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset, e.g. nyu-mll/glue."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset config, e.g. sst2."})
    train_file: str | None = field(default=None, metadata={"help": "Training file (.tsv/.csv/.json/.jsonl[.gz])."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation file, same formats."})
    test_file: str | None = field(default=None, metadata={"help": "Prediction file; also .txt, one sentence a line."})
    text_column: str | None = field(default=None, metadata={"help": "Text column (default: 'sentence' or 'text')."})
    label_column: str = field(default="label", metadata={"help": "Label column: 0/1 or negative/positive."})
    max_seq_length: int = field(default=128, metadata={"help": "Longer sentences are truncated to this many tokens."})
    pad_to_max_length: bool | None = field(
        default=None, metadata={"help": "Pad every batch to max_seq_length (default: only where CUDA graphs need it; "
                                        "else pad to the longest in the batch)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation rows."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test rows."})
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes for tokenization (at most one per CPU core)."}
    )

    def split_sources(self, training_args):
        """(split, file or None) for each split the run needs."""
        wanted = [("train", self.train_file, training_args.do_train),
                  ("validation", self.validation_file, training_args.do_eval),
                  ("test", self.test_file, training_args.do_predict)]
        return [(split, path) for split, path, needed in wanted if needed]


def load_rows(data_args, split, path):
    """Rows of one split, from a local file or the Hub dataset; each row carries '_row' for error messages."""
    if path:
        return read_records(path, flag=f"--{split}_file"), path
    if not data_args.dataset_name:
        raise InputError(f"no data for the {split} split: give --{split}_file or --dataset_name")
    return load_hub_split(data_args.dataset_name, data_args.dataset_config_name, split)


def find_text_column(rows, source, text_column):
    columns = [c for c in rows[0] if c != "_row"]
    if text_column:
        if text_column not in columns:
            raise InputError(f"{source}: no column '{text_column}' (columns: {', '.join(columns)}); fix --text_column")
        return text_column
    for name in TEXT_COLUMNS:
        if name in columns:
            return name
    raise InputError(f"{source}: no 'sentence' or 'text' column (columns: {', '.join(columns)}); "
                     "name the text column with --text_column, or add a header line (the first line names the "
                     "columns, e.g. sentence<TAB>label)")


def parse_label(value, source, where):
    """0/1, "0"/"1", or a label name -> 0/1; -1, "" and missing -> UNLABELED. Returns (label, kind)."""
    if value is None or value == "" or value == UNLABELED or value == str(UNLABELED):
        return UNLABELED, None
    shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:30]}... ({len(str(value))} characters)"
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():  # (also inf and NaN)
        raise InputError(f"{source}, {where}: label {shown} is not 0/1 or negative/positive; fix that row")
    # ASCII digits only: str.isdigit() also accepts "¹", which int() and float() cannot read. The integer part is
    # read as an int, never through a float (99999999999999999999999 would be inf), and only when short (int() reads
    # no more than 4300 digits): a longer one is not 0 or 1 anyway.
    if isinstance(value, (int, float)) or isinstance(value, str) and re.fullmatch(r"-?[0-9]+(\.0*)?", value.strip()):
        digits = str(int(value) if isinstance(value, float) else value).strip().split(".")[0]
        number = int(digits) if len(digits) <= 20 else None
        if number not in (0, 1):
            raise InputError(f"{source}, {where}: label {shown} is outside the label set {{0, 1}}; fix that row")
        return number, "number"
    if isinstance(value, str) and value.strip().lower() in LABEL_NAMES:
        return LABEL_NAMES.index(value.strip().lower()), "name"
    raise InputError(f"{source}, {where}: label {shown} is not 0/1 or negative/positive; fix that row")


def build_dataset(rows, source, data_args, split):
    """Validates every row and returns a Dataset with columns sentence, label (-1 = unlabeled)."""
    # a .txt file is one sentence per line, whatever --text_column names for the other files
    text_column = "sentence" if split_suffix(source) == ".txt" else find_text_column(rows, source, data_args.text_column)
    sentences, labels, kinds = [], [], {}
    for row in rows:
        text = row.get(text_column)
        if text is not None and not isinstance(text, str):
            raise InputError(f"{source}, {row['_row']}: '{text_column}' is {type(text).__name__} {text!r}, not text; "
                             "quote it or fix the row")
        if not text or not text.strip():
            raise InputError(f"{source}, {row['_row']}: empty or missing '{text_column}'; fill it in or drop the row")
        label, kind = parse_label(row.get(data_args.label_column), source, row["_row"])
        if kind:
            kinds.setdefault(kind, row["_row"])
        if len(kinds) > 1:
            raise InputError(f"{source}: mixed label types (numbers at {kinds['number']}, names at {kinds['name']}); "
                             "use 0/1 or negative/positive throughout")
        sentences.append(text)
        labels.append(label)
    if split != "test" and UNLABELED in labels:
        where = rows[labels.index(UNLABELED)]["_row"]
        raise InputError(f"{source}, {where}: missing label in the {split} data (column '{data_args.label_column}'); "
                         "every training and validation row needs 0/1 or negative/positive")
    return datasets.Dataset.from_dict({"sentence": sentences, "label": labels})


def ranked_mistakes(labels, probabilities):
    """Indices of the misclassified sentences, the most confident mistakes first."""
    confidence = probabilities.max(-1)
    wrong = np.flatnonzero(probabilities.argmax(-1) != labels)
    return wrong[np.argsort(-confidence[wrong], kind="stable")]


def prediction_lines(sentences, labels, probabilities, indices):
    """TSV text of the given sentences: index, gold, predicted, probability (of the predicted label), sentence."""
    predicted, confidence = probabilities.argmax(-1), probabilities.max(-1)
    lines = ["index\tgold\tpredicted\tprobability\tsentence"] + [
        f"{i}\t{LABEL_NAMES[labels[i]]}\t{LABEL_NAMES[predicted[i]]}\t{confidence[i]:.4f}\t{tsv_cell(sentences[i])}"
        for i in indices
    ]
    return "\n".join(lines) + "\n"


def failure_report(sentences, labels, probabilities):
    """Misclassified sentences, the most confident mistakes first, as TSV text."""
    wrong = ranked_mistakes(labels, probabilities)
    return prediction_lines(sentences, labels, probabilities, wrong), len(wrong)


def predictions_report(sentences, labels, probabilities):
    """Every sentence in validation order, as TSV text (eval_predictions.tsv, read by compare_runs.py)."""
    return prediction_lines(sentences, labels, probabilities, range(len(sentences)))


def failure_page_report(sentences, labels, probabilities):
    """The misclassified sentences as an HTML page (eval_failures.html), the most confident mistakes first."""
    predicted, confidence = probabilities.argmax(-1), probabilities.max(-1)
    wrong = ranked_mistakes(labels, probabilities)
    rows = [{"index": int(i), "gold": LABEL_NAMES[labels[i]], "predicted": LABEL_NAMES[predicted[i]],
             "confidence": round(float(confidence[i]), 4), "sentence": sentences[i]} for i in wrong]
    intro = (f"{len(wrong)} of {len(sentences)} validation sentences are misclassified (accuracy "
             f"{1 - len(wrong) / max(len(sentences), 1):.4f}); the most confident mistakes come first. "
             "Confidence is the probability the model gave its (wrong) prediction.")
    columns = [("index", "index"), ("gold", "gold"), ("predicted", "predicted"), ("confidence", "confidence"),
               ("sentence", "sentence")]
    return failure_page("SST-2: misclassified validation sentences", intro, columns, rows)


def softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def get_datasets(data_args, training_args):
    """{split: Dataset of sentence, label} for the splits this run needs, each validated and cut to its limit."""
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples,
              "test": data_args.max_predict_samples}
    splits = {}
    with cycle_collection_paused():
        for split, path in data_args.split_sources(training_args):
            rows, source = load_rows(data_args, split, path)
            splits[split] = first_rows(build_dataset(rows, source, data_args, split), limits[split])
    if not splits:
        raise InputError("nothing to do: pass --do_train, --do_eval and/or --do_predict")
    return splits


def get_model(model_args, data_args, training_args, resume_from):
    """Tokenizer and classifier. The label names travel with the saved config, so pipeline() shows
    negative/positive. The problem type is stated up front: the model would otherwise set it during its first
    forward, which makes torch.compile compile a second time."""
    config, tokenizer = load_tokenizer_and_config(
        model_args, num_labels=2, id2label=dict(enumerate(LABEL_NAMES)),
        label2id={name: i for i, name in enumerate(LABEL_NAMES)}, finetuning_task="sst2",
        problem_type="single_label_classification",
    )
    check_max_seq_length(data_args.max_seq_length, tokenizer, config)
    model = load_model(model_args, AutoModelForSequenceClassification, config)
    if training_args.do_train:
        check_training_setup(training_args, model, resume_from)
    return tokenizer, model


def tokenize(splits, tokenizer, data_args, training_args):
    def encode(batch):
        padding = "max_length" if data_args.pad_to_max_length else False
        return tokenizer(batch["sentence"], truncation=True, max_length=data_args.max_seq_length, padding=padding)

    with training_args.main_process_first(desc="tokenization"):
        features = {
            split: map_in_processes(dataset, encode, data_args.preprocessing_num_workers,
                                    remove_columns=["sentence"], desc=f"Tokenizing {split}")
            for split, dataset in splits.items()
        }
    if "test" in features and UNLABELED in splits["test"]["label"]:  # GLUE's test split: no labels to feed the model
        features["test"] = features["test"].remove_columns("label")
    return features


def evaluate_and_report(trainer, features, dataset):
    """One prediction pass gives the metrics (eval_results.json), the failure report (eval_failures.tsv and .html)
    and every sentence's prediction (eval_predictions.tsv)."""
    output = trainer.predict(features, metric_key_prefix="eval")
    metrics = {**output.metrics, "eval_samples": len(features)}
    trainer.log(metrics)
    trainer.log_metrics("eval", metrics)
    if trainer.is_world_process_zero():
        sentences, labels = dataset["sentence"], np.array(dataset["label"])
        probabilities = softmax(output.predictions)
        report, mistakes = failure_report(sentences, labels, probabilities)
        output_dir = trainer.args.output_dir
        atomic_write_text(f"{output_dir}/eval_failures.tsv", report)
        atomic_write_text(f"{output_dir}/eval_failures.html", failure_page_report(sentences, labels, probabilities))
        atomic_write_text(f"{output_dir}/eval_predictions.tsv", predictions_report(sentences, labels, probabilities))
        logger.info("%d misclassified validation sentences written to eval_failures.tsv and eval_failures.html "
                    "(open it in a browser); every prediction to eval_predictions.tsv", mistakes)
        save_metrics(trainer.args.output_dir, "eval", metrics)
    return metrics


def predict(trainer, features, sentences):
    """predict_results.tsv: index, predicted label, its probability, sentence."""
    probabilities = softmax(trainer.predict(features, metric_key_prefix="predict").predictions)
    if trainer.is_world_process_zero():
        lines = ["index\tprediction\tprobability\tsentence"] + [
            f"{i}\t{LABEL_NAMES[p.argmax()]}\t{p.max():.4f}\t{tsv_cell(sentence)}"
            for i, (p, sentence) in enumerate(zip(probabilities, sentences))
        ]
        atomic_write_text(f"{trainer.args.output_dir}/predict_results.tsv", "\n".join(lines) + "\n")
        logger.info("Predictions for %d sentences written to predict_results.tsv", len(probabilities))


def main(argv=None):
    clock = PhaseClock(from_process_start=argv is None)  # in-process callers (tests) count from here
    clock.mark("imports")  # Python, torch, transformers, datasets: most of a run's start-up
    model_args, data_args, training_args = parse_args((ModelArguments, DataArguments, TrainingArguments), argv)
    if data_args.pad_to_max_length is None:
        data_args.pad_to_max_length = training_args.replays_cuda_graphs  # graphs need one shape per batch size
    set_up_logging(training_args)
    training_args.check_best_metric(("loss", "accuracy", "f1"))  # eval_* keys of the loss and metrics/accuracy_f1
    clock.mark("arguments")

    splits = get_datasets(data_args, training_args)  # read and validated before any model is built or file written
    resume_from = claim_output_dir(training_args, model_args, data_args)
    clock.mark("data")

    set_seed(training_args.seed)
    tokenizer, model = get_model(model_args, data_args, training_args, resume_from)
    clock.mark("model")

    features = tokenize(splits, tokenizer, data_args, training_args)
    clock.mark("tokenize")

    metric = evaluate.load(str(REPO_DIR / "metrics" / "accuracy_f1"))
    trainer = OrderedEvalTrainer(
        model=model,
        args=training_args,
        train_dataset=features.get("train"),
        eval_dataset=features.get("validation"),
        processing_class=tokenizer,
        dynamic_lengths=not data_args.pad_to_max_length,
        data_collator=batch_collator(tokenizer, training_args, data_args.pad_to_max_length),
        compute_metrics=lambda p: metric.compute(predictions=p.predictions.argmax(-1), references=p.label_ids),
    )
    all_metrics = {}
    if training_args.do_train:
        all_metrics.update(train_and_save(trainer, resume_from, train_samples=len(features["train"])))
        clock.mark("train")
    if training_args.do_eval:
        all_metrics.update(evaluate_and_report(trainer, features["validation"], splits["validation"]))
        clock.mark("evaluate")
    if training_args.do_predict:
        predict(trainer, features["test"], splits["test"]["sentence"])
        clock.mark("predict")
    finish_run(trainer, CARD, model_args, data_args, all_metrics, clock)


if __name__ == "__main__":
    run_main(main)
