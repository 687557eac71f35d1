"""Extractive question answering (SQuAD v1.1, v2): run_squad.py's arguments, the model class, the card, the files
that quote the data, and how a saved folder shows the task; the windows, post-processing and pipeline are in
utils_qa.py, which travels with every trained model."""

from dataclasses import dataclass, field
from typing import ClassVar

from transformers import AutoModelForQuestionAnswering

from finetune.arguments import TrainingArguments
from finetune.card import TaskCard
from finetune.errors import InputError
from finetune.tasks.qa_compare import COMPARISON_HEADERS, compare_folders  # noqa: F401 (what compare_runs.py asks)

SHORT_NAME = "SQuAD"
READS_VALIDATION_FILE = True  # compare_runs.py: the questions, gold answers and contexts come from it
AUTO_CLASS = AutoModelForQuestionAnswering
ARCHITECTURE_SUFFIX = "ForQuestionAnswering"
PREDICTIONS_FILE = "eval_predictions.json"
# The files that quote the data: predictions, n-best lists, no-answer odds and the failure reports
PER_EXAMPLE_FILES = ("*predictions*.json", "*nbest*.json", "*null_odds*.json", "eval_failures.tsv",
                     "eval_failures.html")
METRICS = ("exact_match", "f1")  # what metrics/squad returns (eval_exact_match, eval_f1 in the logs)
METRICS_V2 = ("exact", "f1", "best_exact", "best_f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")  # v2's

# transformers 5 has no "question-answering" pipeline of its own: the model folder carries ours (utils_qa.py).
USAGE = """from transformers import pipeline

# trust_remote_code=True runs the pipeline code stored in this model's repository (utils_qa.py): read it first.
qa = pipeline("question-answering", model="{repo_id}", trust_remote_code=True)
print(qa(question="Where is the Eiffel Tower?",
         context="The Eiffel Tower is a wrought-iron lattice tower in Paris, France."))
# {'score': ..., 'start': ..., 'end': ..., 'answer': ...}

# In a checkout of the recipe repository, the same pipeline without running downloaded code:
# from utils_qa import qa_pipeline; qa = qa_pipeline("{repo_id}")"""
CARDS = {
    version_2: TaskCard(
        name=name, pipeline_tag="question-answering", task_name="Question Answering", dataset_id=f"rajpurkar/{name}",
        dataset_config=None, dataset_title=title, metrics=(("exact_match", "Exact Match"), ("f1", "F1")),
        tags=("question-answering", name, "bert"), usage=USAGE,
        examples="questions")
    for version_2, name, title in ((False, "squad", "SQuAD v1.1"), (True, "squad_v2", "SQuAD v2.0"))
}


@dataclass
class SquadTrainingArguments(TrainingArguments):
    default_best_metric: ClassVar[str] = "f1"  # for --load_best_model_at_end: QA evaluation computes no loss


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset: rajpurkar/squad or .../squad_v2."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset config, if it has several."})
    train_file: str | None = field(default=None, metadata={"help": "SQuAD JSON or .json/.jsonl/.csv rows."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation file, same formats."})
    test_file: str | None = field(default=None, metadata={"help": "Rows of id, question, context (no answers)."})
    max_seq_length: int = field(default=384, metadata={"help": "Tokens per window (question + context)."})
    doc_stride: int = field(default=128, metadata={"help": "Context tokens shared by consecutive windows."})
    question_column_name: str = field(default="question", metadata={"help": "The question column of flat rows or a "
                                                                            "Hub dataset."})
    context_column_name: str = field(default="context", metadata={"help": "The context column."})
    answer_column_name: str = field(default="answers", metadata={"help": "The answers column."})
    max_query_length: int = field(default=64, metadata={"help": "Longer questions are cut to this many tokens."})
    pad_to_max_length: bool = field(
        default=True, metadata={"help": "Pad every window to max_seq_length (False: pad to the longest in the batch)."}
    )
    version_2_with_negative: bool = field(
        default=False, metadata={"help": "SQuAD v2: some questions have no answer; score with squad_v2."}
    )
    null_score_diff_threshold: float | None = field(
        default=None, metadata={"help": "v2: answer \"\" when null score - best answer score is above this "
                                        "(default: the threshold stored with the model, else 0)."}
    )
    n_best_size: int = field(default=20, metadata={"help": "Top start and end positions paired per window."})
    max_answer_length: int = field(default=30, metadata={"help": "Longest answer, in tokens."})
    first_window_only: bool = field(
        default=False, metadata={"help": "Ablation: keep only the first window of each context (truncation), in "
                                         "training and evaluation; an answer past it cannot be found."})
    mask_question_attention: bool = field(
        default=False, metadata={"help": "Ablation: attention mask 0 over the question's tokens, in training and "
                                         "evaluation, so the context cannot attend to the question."})
    independent_argmax: bool = field(
        default=False, metadata={"help": "Ablation: answer from the argmax start and the argmax end, chosen "
                                         "independently over all tokens (not the best valid pair of --n_best_size)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training questions."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation questions."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test questions."})
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes for tokenization (at most one per CPU core)."}
    )

    def columns(self):
        """{the data's column: the SQuAD name it holds}, for finetune.data.renamed_columns."""
        return {self.question_column_name: "question", self.context_column_name: "context",
                self.answer_column_name: "answers"}

    def check(self):
        for name in ("n_best_size", "max_answer_length", "max_query_length", "doc_stride"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name} must be at least 1 (got {getattr(self, name)})")


def folder_card(config, results_text=""):
    """The card of a saved question-answering folder (v2 when its results hold the has-answer / no-answer split),
    or None when it is not one."""
    if not any(str(name).endswith(ARCHITECTURE_SUFFIX) for name in config.get("architectures") or []):
        return None
    return CARDS["HasAns" in results_text or "NoAns" in results_text or "null_score_diff_threshold" in config]


def named_cards():
    return {card.name: card for card in CARDS.values()}
