"""What run_glue_sst2.py reads: its data arguments, which task a run is, and every split as a validated Dataset of
sentence[, sentence_pair], label. Each problem in a file is one InputError naming the file and the row."""

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field

import datasets

from finetune.arguments import TrainingArguments
from finetune.errors import InputError
from finetune.data import first_rows, load_hub_split, read_records, split_suffix
from finetune.tasks.text_classification import (CUSTOM, DEFAULT_TASK, GLUE_DATASET, GLUE_TASKS, glue_task, own_task,
                                                recognise)

UNLABELED = -1  # GLUE's test split marks its hidden labels with -1
SINGLE_COLUMNS = ("sentence", "text")
PAIR_COLUMNS = (("sentence1", "sentence2"), ("question1", "question2"), ("premise", "hypothesis"),
                ("question", "sentence"), ("text", "text_pair"))
PROBLEM_TYPES = ("single_label_classification", "regression")


@dataclass
class DataArguments:
    task_name: str | None = field(default=None, metadata={
        "help": f"GLUE task ({', '.join(GLUE_TASKS)}) or '{CUSTOM}' (your own labels, read from the training data). "
                f"Default: {DEFAULT_TASK}, unless the model, --label_names or --text_pair_column say otherwise."})
    dataset_name: str | None = field(default=None, metadata={"help": f"Hub dataset (default for a GLUE task: "
                                                                      f"{GLUE_DATASET})."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset config, e.g. sst2."})
    train_file: str | None = field(default=None, metadata={"help": "Training file (.tsv/.csv/.json/.jsonl[.gz])."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation file, same formats."})
    test_file: str | None = field(default=None, metadata={"help": "Prediction file; also .txt, one text a line."})
    text_column: str | None = field(default=None, metadata={
        "help": "Text column (default: the task's, or 'sentence' / 'text'; pairs: sentence1/sentence2, "
                "question1/question2, premise/hypothesis, question/sentence, text/text_pair)."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Second text of a sentence pair."})
    label_column: str = field(default="label", metadata={"help": "Label column: names, integers, or scores."})
    problem_type: str | None = field(default=None, metadata={
        "help": "Unset: a regression where the training labels are fractions, else a classification",
        "choices": PROBLEM_TYPES})
    max_seq_length: int = field(default=128, metadata={"help": "Longer texts are truncated to this many tokens."})
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

    def __post_init__(self):
        if self.task_name is not None and self.task_name not in (*GLUE_TASKS, CUSTOM):
            raise InputError(f"--task_name {self.task_name}: not a GLUE task; choose one of "
                             f"{', '.join(GLUE_TASKS)}, or {CUSTOM} for your own labels")


@dataclass
class ClassificationTrainingArguments(TrainingArguments):
    # --label_names names the classes here. The Trainer's own --label_names (the input keys that hold the labels) is
    # left to its default, the model's: the field is emptied once read.
    label_names: str | None = field(default=None, metadata={
        "help": "Your labels in id order, comma-separated (default: read from the training data, sorted)."})

    def __post_init__(self):
        self.class_names, self.label_names = self.label_names, None
        super().__post_init__()


def saved_config(model_args):
    """config.json of the model to start from, a local folder or a Hub id (a fine-tuned classifier says its task and
    labels there), else {}. Fetched from the Hub into the cache, where loading the model finds it next."""
    name = model_args.model_name_or_path
    path = os.path.join(name or "", "config.json")
    if name and not os.path.isdir(name):
        try:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(name, "config.json", revision=model_args.model_revision,
                                   cache_dir=model_args.cache_dir)
        except Exception:  # not a Hub id, or unreachable: loading the model reports it
            return {}
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def resolve_task(data_args, training_args, model_config):
    """The run's task: --task_name; a GLUE dataset's config; own labels where --label_names, --text_pair_column or
    --problem_type say so; the task a fine-tuned model was trained on; else SST-2. Its label names may still be
    open (own labels are then read from the training data: see get_datasets)."""
    name = data_args.task_name
    if name is None and is_glue(data_args.dataset_name) and data_args.dataset_config_name in GLUE_TASKS:
        name = data_args.dataset_config_name
    label_names = training_args.class_names
    if name is None and (label_names or data_args.text_pair_column or data_args.problem_type):
        name = CUSTOM
    saved = recognise(model_config) if model_config else None
    if name is None and saved is not None:
        name = saved.name
    name = name or DEFAULT_TASK
    if name != CUSTOM:
        task = glue_task(name)
        if data_args.problem_type and (data_args.problem_type == "regression") != task.regression:
            raise InputError(f"--problem_type {data_args.problem_type} does not fit --task_name {name}; drop one")
        return task
    if data_args.problem_type == "regression":
        return own_task(None)
    if label_names:
        names = [name.strip() for name in label_names.split(",")]
        if len(names) < 2 or not all(names) or len(set(names)) < len(names):
            raise InputError(f"--label_names {label_names!r}: give two or more distinct names, comma-"
                             "separated, in id order")
        return own_task(names)
    if saved is not None and saved.name == CUSTOM and not data_args.train_file:
        return saved  # evaluating or predicting with a model of own labels: its config holds them
    return None  # own labels, read from the training data


def is_glue(dataset_name):
    return dataset_name in (GLUE_DATASET, "glue", "nyu-mll/glue")


def split_sources(task, data_args, training_args):
    """(split, file or Hub split, its suffix in result names) for each split the run needs. MNLI's Hub validation is
    two splits: matched (the eval_* results) and mismatched (eval_*_mm)."""
    glue = task.glue if task is not None else None
    evaluations = [("validation", data_args.validation_file, "")]
    if not data_args.validation_file and glue:
        evaluations = [(split, None, "" if i == 0 else "_mm") for i, split in enumerate(glue.eval_splits)]
    wanted = [("train", data_args.train_file, "", training_args.do_train)]
    wanted += [(split, path, suffix, training_args.do_eval) for split, path, suffix in evaluations]
    wanted += [(glue.test_split if glue and not data_args.test_file else "test", data_args.test_file, "",
                training_args.do_predict)]
    return [(split, path, suffix) for split, path, suffix, needed in wanted if needed]


def load_rows(data_args, task, split, path):
    """Rows of one split, from a local file or the Hub dataset; each row carries '_row' for error messages."""
    if path:
        return read_records(path, flag=f"--{split_flag(split)}"), path
    dataset_name = data_args.dataset_name or (GLUE_DATASET if task is not None and task.glue else None)
    if not dataset_name:
        raise InputError(f"no data for the {split} split: give --{split_flag(split)} or --dataset_name")
    config_name = data_args.dataset_config_name or (task.name if is_glue(dataset_name) and task.glue else None)
    return load_hub_split(dataset_name, config_name, split)


def split_flag(split):
    return "train_file" if split == "train" else "test_file" if split.startswith("test") else "validation_file"


def find_text_columns(rows, source, task, data_args):
    """(text column, second text column or None) of one file, by the flags, the task's own columns, or the names
    GLUE uses."""
    columns = [c for c in rows[0] if c != "_row"]
    pair = task.pair if task is not None else None
    for flag, name in (("--text_column", data_args.text_column), ("--text_pair_column", data_args.text_pair_column)):
        if name and name not in columns:
            raise InputError(f"{source}: no column '{name}' (columns: {', '.join(columns)}); fix {flag}")
    if data_args.text_column and (data_args.text_pair_column or pair is False):
        return data_args.text_column, data_args.text_pair_column
    own = [task.glue.texts] if task is not None and task.glue else []
    candidates = [tuple(c) for c in own] + ([] if pair is False else list(PAIR_COLUMNS))
    if pair is not True:
        candidates += [(c,) for c in SINGLE_COLUMNS]
    if data_args.text_column:
        candidates = [c for c in candidates if c[0] == data_args.text_column] or [(data_args.text_column,)]
    for candidate in candidates:
        if len(candidate) == 2 and candidate[0] in columns and candidate[1] not in columns and candidate in own:
            raise InputError(f"{source}: no column '{candidate[1]}' for the second text of each pair (columns: "
                             f"{', '.join(columns)}); name it with --text_pair_column")
        if all(c in columns for c in candidate):
            return candidate[0], candidate[1] if len(candidate) == 2 else None
    if pair:
        raise InputError(f"{source}: no pair of text columns (columns: {', '.join(columns)}); {task.name} reads "
                         "sentence pairs: name them with --text_column and --text_pair_column")
    raise InputError(f"{source}: no 'sentence' or 'text' column (columns: {', '.join(columns)}); name the text "
                     "column with --text_column, or add a header line (the first line names the columns, e.g. "
                     "sentence<TAB>label)")


def with_pair(task, pair, source):
    if task is None or task.pair is None:
        return task if task is None else dataclasses.replace(task, pair=pair)
    if task.pair != pair:
        raise InputError(f"{source}: {'two text columns' if pair else 'one text column'}, where the model or task "
                         f"reads {'pairs' if task.pair else 'single texts'}; give the same kind of data")
    return task


def shown(value):
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(str(value))} characters)"


NUMBER = re.compile(r"-?[0-9]+(\.0*)?")  # ASCII digits only: "¹".isdigit(), which int() cannot read
FRACTION = re.compile(r"-?[0-9]*\.[0-9]+([eE][-+]?[0-9]+)?|-?[0-9]+[eE][-+]?[0-9]+")


def as_integer(value):
    """The integer a label holds (1, 1.0, "1", "1.0"), None for a name, or the float of a fraction ("frac")."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return int(value) if value.is_integer() else "frac"
    if isinstance(value, int):
        return value
    if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        # The integer part is read as an int, never through a float (99999999999999999999999 would be inf), and only
        # when short (int() reads no more than 4300 digits).
        digits = value.strip().split(".")[0]
        return int(digits) if len(digits) <= 20 else "long"
    if isinstance(value, str) and FRACTION.fullmatch(value.strip()):
        number = float(value)
        return int(number) if number.is_integer() and abs(number) < 2**53 else "frac"
    return None


def label_choices(names):
    if all(re.fullmatch(r"-?[0-9]+", name) for name in names):
        return "/".join(names) if len(names) <= 4 else f"one of {', '.join(names[:6])}, ..."
    numbers = "/".join(map(str, range(len(names)))) if len(names) <= 4 else f"0-{len(names) - 1}"
    words = "/".join(names) if len(names) <= 4 else f"one of {', '.join(names[:6])}{', ...' if len(names) > 6 else ''}"
    return f"{numbers} or {words}"


def label_set_text(names):
    shown_names = names if all(re.fullmatch(r"-?[0-9]+", name) for name in names) else range(len(names))
    shown_names = [str(name) for name in shown_names]
    return "{" + (", ".join(shown_names) if len(shown_names) <= 8 else f"{', '.join(shown_names[:6])}, ...") + "}"


def parse_label(value, names, source, where):
    """A label (a name, or an integer: the id, or the name where the names are integers) -> (id, kind); "" and
    missing -> UNLABELED, and -1 too unless it is one of the labels (-1 / 0 / 1 for negative / neutral / positive)."""
    unlabeled = value == UNLABELED or value == str(UNLABELED)
    if value is None or value == "" or unlabeled and str(UNLABELED) not in names:
        return UNLABELED, None
    number = as_integer(value)
    if number == "frac" and math.isfinite(value if isinstance(value, float) else float(value)):
        raise InputError(f"{source}, {where}: label {shown(value)} is not {label_choices(names)}: a fraction is the "
                         "score of a regression (--task_name custom --problem_type regression); fix that row")
    if number in ("frac", "bool"):
        raise InputError(f"{source}, {where}: label {shown(value)} is not {label_choices(names)}; fix that row")
    if number is not None:
        numbered = all(re.fullmatch(r"-?[0-9]+", name) for name in names)
        if numbered and str(number) in names:
            return names.index(str(number)), "number"
        if not numbered and isinstance(number, int) and 0 <= number < len(names):
            return number, "number"
        raise InputError(f"{source}, {where}: label {shown(value)} is outside the label set {label_set_text(names)}; "
                         "fix that row")
    if isinstance(value, str):
        text = value.strip()
        if text in names:
            return names.index(text), "name"
        folded = [i for i, name in enumerate(names) if name.lower() == text.lower()]
        if len(folded) == 1:
            return folded[0], "name"
    raise InputError(f"{source}, {where}: label {shown(value)} is not {label_choices(names)}; fix that row")


def parse_score(value, source, where):
    """A regression's label: a finite number; "" and missing -> None."""
    if value is None or value == "":
        return None
    try:
        score = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        score = math.nan
    if not math.isfinite(score):
        raise InputError(f"{source}, {where}: label {shown(value)} is not a number; a regression's labels are scores: "
                         "fix that row")
    return score


def labels_of(rows, column, source):
    """The label names of a training file in a stable order (integers numerically, names alphabetically), or None
    where the labels are fractions (a regression)."""
    numbers, names, fractions = {}, {}, False
    for row in rows:
        value = row.get(column)
        if value is None or value == "":
            continue  # reported as a missing label when the split is read
        number = as_integer(value)
        if number in ("bool", "long") or isinstance(value, float) and not math.isfinite(value):
            parse_score(value if number != "long" else math.inf, source, row["_row"])
        if number == "frac":
            fractions = True
            numbers.setdefault(float(value), row["_row"])
        elif number is not None:
            numbers.setdefault(number, row["_row"])
        else:
            names.setdefault(str(value).strip(), row["_row"])
    if numbers and names:
        raise InputError(f"{source}: mixed label types (numbers at {next(iter(numbers.values()))}, names at "
                         f"{next(iter(names.values()))}); use numbers or names throughout")
    if fractions:
        return None
    found = [str(n) for n in sorted(numbers)] or sorted(names)
    if len(found) < 2:
        raise InputError(f"{source}: every training row has the label {found[0] if found else '(none)'!r}: a "
                         "classifier needs two or more labels; fix the data, or for scores pass --problem_type "
                         "regression")
    return found


def build_dataset(rows, source, data_args, split, task):
    """Validates every row; returns (Dataset of sentence[, sentence_pair][, label], the task with its kind of input
    known). A test split keeps no labels: prediction needs none."""
    if split_suffix(source) == ".txt":  # one text per line, whatever --text_column names for the other files
        if task is not None and task.pair:
            raise InputError(f"{source}: a .txt file holds one text per line, and {task.name} reads sentence pairs; "
                             "give a .tsv, .csv or .json file with both columns")
        first, second = "sentence", None
    else:
        first, second = find_text_columns(rows, source, task, data_args)
    task = with_pair(task, second is not None, source)
    labelled = not split.startswith("test")
    columns = {"sentence": [], **({"sentence_pair": []} if second else {}), **({"label": []} if labelled else {})}
    kinds = {}
    for row in rows:
        for name, key in ((first, "sentence"), (second, "sentence_pair")):
            if name is None:
                continue
            text = row.get(name)
            if text is not None and not isinstance(text, str):
                raise InputError(f"{source}, {row['_row']}: '{name}' is {type(text).__name__} {text!r}, not text; "
                                 "quote it or fix the row")
            if not text or not text.strip():
                raise InputError(f"{source}, {row['_row']}: empty or missing '{name}'; fill it in or drop the row")
            columns[key].append(text)
        if not labelled:
            continue
        value = row.get(data_args.label_column)
        if task.regression:
            label, kind = parse_score(value, source, row["_row"]), "score"
        else:
            label, kind = parse_label(value, list(task.label_names), source, row["_row"])
        if kind and task.glue:
            kinds.setdefault(kind, row["_row"])
        if len(kinds) > 1:
            raise InputError(f"{source}: mixed label types (numbers at {kinds['number']}, names at {kinds['name']}); "
                             f"use {label_choices(list(task.label_names))} throughout")
        if label is None or label == UNLABELED:
            choices = "a score" if task.regression else label_choices(list(task.label_names))
            raise InputError(f"{source}, {row['_row']}: missing label in the {split} data (column "
                             f"'{data_args.label_column}'); every training and validation row needs {choices}")
        columns["label"].append(label)
    return datasets.Dataset.from_dict(columns), task


def get_datasets(task, data_args, training_args):
    """({split: (Dataset, suffix of its result names)}, the task with its labels) for the splits this run needs, each
    validated and cut to its limit; own labels are read from the training data first."""
    sources = split_sources(task, data_args, training_args)
    if not sources:
        raise InputError("nothing to do: pass --do_train, --do_eval and/or --do_predict")
    splits = {}
    for split, path, suffix in sources:
        rows, source = load_rows(data_args, task, split, path)
        if task is None:
            if split != "train":
                raise InputError("your own labels are read from the training data: give --train_file, or name them "
                                 "in id order with --label_names")
            task = own_task(labels_of(rows, data_args.label_column, source))
        dataset, task = build_dataset(rows, source, data_args, split, task)
        limit = (data_args.max_train_samples if split == "train" else data_args.max_predict_samples
                 if split.startswith("test") else data_args.max_eval_samples)
        splits[split] = (first_rows(dataset, limit), suffix)
    return splits, task
