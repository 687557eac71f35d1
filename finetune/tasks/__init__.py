"""The tasks. Each module says what its script reads, its model class, its metrics and per-example reports, its
card, the files that quote the data, and how a saved folder or its predictions show it. The shared code asks the
functions here and never names a task; a new task is a module added to TASKS (docs/code.md)."""

import json
from pathlib import Path

from finetune.tasks import question_answering, text_classification

TASKS = (text_classification, question_answering)


def per_example_files():
    """Glob patterns of the files that quote the data (never pushed; written before a run's first checkpoint)."""
    return [pattern for task in TASKS for pattern in task.PER_EXAMPLE_FILES]


def card_of_folder(folder):
    """The TaskCard of a saved model folder, from its config.json (and its results), or None."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    results = folder / "all_results.json"
    results_text = results.read_text(encoding="utf-8", errors="replace") if results.is_file() else ""
    for task in TASKS:
        card = task.folder_card(config, results_text)
        if card is not None:
            return card
    return None


def tasks_with_predictions(folder):
    """(task module, predictions file) for each task whose evaluation predictions the folder holds."""
    return [(task, Path(folder) / task.PREDICTIONS_FILE) for task in TASKS
            if (Path(folder) / task.PREDICTIONS_FILE).is_file()]


def comparison_headers():
    """The first lines of the disagreements.tsv files compare_runs.py writes."""
    return [header for task in TASKS for header in task.COMPARISON_HEADERS]
