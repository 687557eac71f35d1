"""Text classification: GLUE's nine tasks, one row each of GLUE_TASKS, and the user's own data ("custom"): one text
or a pair, labels of any kind (names or integers, read from the training data or fixed by --label_names; scores for
a regression). What run_glue_sst2.py reads, its model class, its metrics, its card, and how a saved folder shows
it: the shared code asks this module, never the script."""

from dataclasses import dataclass, field

from transformers import AutoModelForSequenceClassification

from finetune.card import TaskCard
from finetune.tasks import classification_reports as reports
from finetune.metric_arrays import regression_metric
from finetune.stats import bootstrap_intervals, classification_intervals
from finetune.tasks.classification_metrics import (REGRESSION_METRICS, classification_scores, f1_average,
                                                   per_class_report, regression_scores)

AUTO_CLASS = AutoModelForSequenceClassification
ARCHITECTURE_SUFFIX = "ForSequenceClassification"  # how a saved config.json shows this task
CUSTOM = "custom"  # the task name of the user's own labels
GLUE_DATASET = "nyu-mll/glue"
SHORT_NAME = "text classification"
READS_VALIDATION_FILE = False  # compare_runs.py: the predictions file holds the texts and gold labels
PER_EXAMPLE_FILES, PREDICTIONS_FILE = reports.PER_EXAMPLE_FILES, reports.PREDICTIONS_FILE
COMPARISON_HEADERS, compare_folders = reports.COMPARISON_HEADERS, reports.compare_folders


@dataclass(frozen=True)
class GlueTask:
    texts: tuple  # the Hub dataset's text columns: one, or a pair
    labels: tuple | None  # class names in the dataset's order; None: a regression (STS-B)
    metrics: tuple  # (metric, shown name), the official one first
    title: str
    eval_splits: tuple = ("validation",)  # the Hub splits evaluated; MNLI's matched, then mismatched
    test_split: str = "test"


ACCURACY, ACCURACY_F1 = (("accuracy", "Accuracy"),), (("accuracy", "Accuracy"), ("f1", "F1"))
CORRELATIONS = (("pearson", "Pearson correlation"), ("spearmanr", "Spearman correlation"))
GLUE_TASKS = {
    "cola": GlueTask(("sentence",), ("unacceptable", "acceptable"), (("matthews_correlation", "Matthews correlation"),
                                                                     *ACCURACY), "GLUE CoLA"),
    "sst2": GlueTask(("sentence",), ("negative", "positive"), ACCURACY_F1, "GLUE SST-2"),
    "mrpc": GlueTask(("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ACCURACY_F1, "GLUE MRPC"),
    "qqp": GlueTask(("question1", "question2"), ("not_duplicate", "duplicate"), ACCURACY_F1, "GLUE QQP"),
    "stsb": GlueTask(("sentence1", "sentence2"), None, CORRELATIONS, "GLUE STS-B"),
    "mnli": GlueTask(("premise", "hypothesis"), ("entailment", "neutral", "contradiction"),
                     (("accuracy", "Matched accuracy"), ("accuracy_mm", "Mismatched accuracy")), "GLUE MNLI",
                     ("validation_matched", "validation_mismatched"), "test_matched"),
    "qnli": GlueTask(("question", "sentence"), ("entailment", "not_entailment"), ACCURACY, "GLUE QNLI"),
    "rte": GlueTask(("sentence1", "sentence2"), ("entailment", "not_entailment"), ACCURACY, "GLUE RTE"),
    "wnli": GlueTask(("sentence1", "sentence2"), ("not_entailment", "entailment"), ACCURACY, "GLUE WNLI"),
}
DEFAULT_TASK = "sst2"  # run_glue_sst2.py without --task_name, own labels or a model that says otherwise


@dataclass(frozen=True)
class ClassificationTask:
    """One run's task: a GLUE task or the user's own labels, with its label names (None: a regression)."""

    name: str
    label_names: tuple | None
    glue: GlueTask | None = None
    pair: bool | None = None  # None: decided by the data's columns (own data)
    metrics: tuple = field(default=ACCURACY_F1)

    @property
    def regression(self):
        return self.label_names is None

    def config_overrides(self):
        """What config.json records: pipeline() shows the label names, and a later run recognises the task. The problem
        type is stated up front: the model would otherwise set it at its first forward, and torch.compile would
        compile a second time."""
        pair = {} if self.pair is None else {"text_pair": self.pair}  # for the card of a folder pushed later
        if self.regression:
            return {"num_labels": 1, "finetuning_task": self.name, "problem_type": "regression", **pair}
        names = self.label_names
        return {"num_labels": len(names), "id2label": dict(enumerate(names)),
                "label2id": {name: i for i, name in enumerate(names)}, "finetuning_task": self.name,
                "problem_type": "single_label_classification", **pair}

    def compute_metrics(self, prediction):
        if self.regression:
            return regression_scores(prediction.predictions.reshape(-1), prediction.label_ids)
        scores = classification_scores(prediction.predictions.argmax(-1), prediction.label_ids, len(self.label_names))
        return {name: scores[name] for name in self.reported_metrics()}

    def reported_metrics(self):
        """The metrics each evaluation reports: accuracy and F1, and Matthews correlation where the task's is (CoLA);
        a regression's correlations."""
        if self.regression:
            return REGRESSION_METRICS
        return ("accuracy", "f1", *(name for name, _ in self.metrics if name == "matthews_correlation"))

    def intervals(self, logits, references):
        """{metric: (low, high)}, the 95% bootstrap interval over the evaluated examples of each reported metric."""
        if self.regression:
            return bootstrap_intervals(regression_metric(REGRESSION_METRICS), (references, logits.reshape(-1)),
                                       vectorized=True)
        n = len(self.label_names)
        return classification_intervals(references, logits.argmax(-1), self.reported_metrics(), n, f1_average(n))

    def metric_names(self):
        """What --metric_for_best_model may name: the evaluation's loss and metrics."""
        return ("loss", "pearson", "spearmanr", "mse") if self.regression else (
            "loss", "accuracy", "f1", "matthews_correlation")

    def per_class(self, predictions, references):
        return None if self.regression else per_class_report(predictions, references, self.label_names)

    @property
    def card(self):
        return task_card(self)


def glue_task(name, pair=None):
    glue = GLUE_TASKS[name]
    return ClassificationTask(name, glue.labels, glue, len(glue.texts) == 2, glue.metrics)


def own_task(label_names, pair=None):
    return ClassificationTask(CUSTOM, None if label_names is None else tuple(label_names), None, pair,
                              CORRELATIONS if label_names is None else ACCURACY_F1)


def task_card(task):
    """The card's task part: GLUE's dataset for a GLUE task; for the user's own labels, nothing of any other task."""
    glue_id = task.glue and task.name
    example = ('{"text": "A man is playing a guitar.", "text_pair": "Someone plays music."}' if task.pair
               else '"Replace this with a text to classify."')
    if task.regression:
        output, labels = "# [{'label': 'LABEL_0', 'score': <the predicted score>}]", "a score (regression)"
    else:
        output = f"{{'label': {task.label_names[0]!r}, 'score': ...}}"
        output = f"# {output}" if task.pair else f"# [{output}]"  # (one pair gives one dict, a text a list)
        labels = ", ".join(f"`{name}`" for name in task.label_names)
    if task.name == "sst2":
        example = '"a gripping, beautifully acted film"'
        output = "# [{'label': 'positive', 'score': ...}]"
    usage = ('from transformers import pipeline\n\nclassifier = pipeline("text-classification", model="{repo_id}")\n'
             f"print(classifier({example}))\n{output}")
    inputs = "sentence pairs" if task.pair else "single texts"
    return TaskCard(
        name=task.name, pipeline_tag="text-classification", task_name="Text Classification",
        dataset_id=GLUE_DATASET if glue_id else task.name, dataset_config=glue_id or None,
        dataset_title=task.glue.title if task.glue else "your data", metrics=task.metrics,
        tags=("text-classification", *([task.name] if glue_id else []), "bert"), usage=usage,
        details=f"It reads {inputs} and predicts {labels}.",
        examples="sentence pairs" if task.pair else "sentences" if task.glue else "texts")


def recognise(config):
    """The task of a saved classifier's config.json (a dict), or None when it is not one."""
    if not any(str(name).endswith(ARCHITECTURE_SUFFIX) for name in config.get("architectures") or []):
        return None
    name = config.get("finetuning_task")
    saved = saved_label_names(config)
    if name in GLUE_TASKS and (GLUE_TASKS[name].labels is None or tuple(saved or ()) == GLUE_TASKS[name].labels):
        return glue_task(name)
    return own_task(saved, pair=config.get("text_pair") if isinstance(config.get("text_pair"), bool) else None)


def saved_label_names(config):
    """The label names config.json holds, in id order; None for a regression or the placeholder LABEL_0, ...."""
    if config.get("problem_type") == "regression" or len(config.get("id2label") or {}) == 1:
        return None
    id2label = config.get("id2label") or {}
    try:
        names = [id2label[key] for key in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        return None
    return None if names == [f"LABEL_{i}" for i in range(len(names))] else names


def folder_card(config, results_text=""):
    task = recognise(config)
    return None if task is None else task.card


def named_cards():
    """The cards push_to_hub.py --task can name (own labels are read from the folder)."""
    return {name: glue_task(name).card for name in GLUE_TASKS}
