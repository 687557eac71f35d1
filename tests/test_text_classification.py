"""Your own classification data: any labels, sentence pairs, regression, the GLUE table; what the saved folder says
(label names, the card, the standard pipeline) and what a run saves loading in another process."""

import csv
import json

import numpy as np
import pytest
from conftest import (REPO_DIR, SAMPLE_DIR, TINY_MODEL, hub_env, report_data, run_main_in_process, run_python,
                      run_script)

import push_to_hub
import run_glue_sst2
import run_squad
from finetune.tasks import card_of_folder, classification_metrics as metrics
from finetune.tasks.classification_data import labels_of, split_sources
from finetune.tasks.text_classification import glue_task

TOPIC_NAMES = ["crafts", "film", "food", "people", "rivers", "town", "transport"]  # sorted, as read from the data
FAST = [*TINY_MODEL, "--do_train", "--do_eval", "--learning_rate", "1e-3", "--per_device_train_batch_size", "32",
        "--max_seq_length", "48", "--save_strategy", "no", "--report_to", "none", "--cpu_threads", "1"]


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def train(output_dir, *args, epochs=4):
    run_glue_sst2.main([*FAST, "--num_train_epochs", str(epochs), "--output_dir", str(output_dir), *map(str, args)])
    return output_dir


@pytest.fixture(scope="module")
def topics_run(tmp_path_factory):
    """7 topics with string labels, read from the training data (a few seconds)."""
    return train(tmp_path_factory.mktemp("topics") / "out", "--task_name", "custom",
                 "--train_file", SAMPLE_DIR / "topics_train.csv", "--validation_file", SAMPLE_DIR / "topics_dev.csv",
                 "--test_file", SAMPLE_DIR / "topics_dev.csv", "--do_predict", epochs=8)


@pytest.fixture(scope="module")
def pairs_run(tmp_path_factory):
    """Sentence pairs (premise, hypothesis) with three string labels."""
    return train(tmp_path_factory.mktemp("pairs") / "out", "--task_name", "custom",
                 "--train_file", SAMPLE_DIR / "pairs_train.jsonl", "--validation_file", SAMPLE_DIR / "pairs_dev.jsonl")


def test_seven_string_labels_are_named_in_the_config_results_and_reports(topics_run):
    config = json.loads((topics_run / "config.json").read_text())
    assert config["id2label"] == {str(i): name for i, name in enumerate(TOPIC_NAMES)}
    assert config["finetuning_task"] == "custom" and config["problem_type"] == "single_label_classification"
    results = json.loads((topics_run / "eval_results.json").read_text())
    per_class = results["eval_per_class"]
    assert list(per_class) == TOPIC_NAMES and sum(c["support"] for c in per_class.values()) == 70
    assert results["eval_f1"] == pytest.approx(np.mean([c["f1"] for c in per_class.values()]))  # macro F1
    predictions = read_tsv(topics_run / "eval_predictions.tsv")
    dev = list(csv.DictReader(open(SAMPLE_DIR / "topics_dev.csv", encoding="utf-8")))
    assert [(p["sentence"], p["gold"]) for p in predictions] == [(r["text"], r["label"]) for r in dev]
    correct = sum(p["gold"] == p["predicted"] for p in predictions)
    assert results["eval_accuracy"] == pytest.approx(correct / len(dev))
    assert {p["prediction"] for p in read_tsv(topics_run / "predict_results.tsv")} <= set(TOPIC_NAMES)


def test_the_standard_pipeline_returns_the_names_for_texts_and_pairs(topics_run, pairs_run):
    from transformers import pipeline

    [single] = pipeline("text-classification", model=str(topics_run))(["the cheese is old ."])
    assert single["label"] in TOPIC_NAMES
    pair = pipeline("text-classification", model=str(pairs_run))(
        {"text": "A dog is reading a book.", "text_pair": "A dog is holding a book."})
    assert pair["label"] in ("contradiction", "entailment", "neutral")


def test_pairs_keep_both_texts_in_every_report(pairs_run):
    config = json.loads((pairs_run / "config.json").read_text())
    assert config["text_pair"] is True and set(config["label2id"]) == {"contradiction", "entailment", "neutral"}
    dev = [json.loads(line) for line in (SAMPLE_DIR / "pairs_dev.jsonl").read_text().splitlines()]
    predictions = read_tsv(pairs_run / "eval_predictions.tsv")
    assert [(p["sentence"], p["sentence_pair"]) for p in predictions] == [(r["premise"], r["hypothesis"]) for r in dev]
    page = report_data((pairs_run / "eval_failures.html").read_text(encoding="utf-8"))
    assert all(row["sentence_pair"] == dev[row["index"]]["hypothesis"] for row in page["rows"])


def mentions_sst2(card):
    """Whether a card speaks of SST-2, sentiment or GLUE (its Reproduce section quotes the command line, here the
    test runner's, which names test files)."""
    text = card.split("## Reproduce")[0].lower()
    return any(word in text for word in ("sst", "sentiment", "positive", "glue"))


def test_the_card_of_own_labels_says_nothing_of_sst2(topics_run, pairs_run):
    for folder in (topics_run, pairs_run):
        card = (folder / "README.md").read_text()
        rebuilt = push_to_hub.card_for(folder, "me/model", None)  # what push_to_hub.py would push
        for text in (card, rebuilt):
            assert not mentions_sst2(text), text
    assert "predicts `crafts`, `film`, `food`" in (topics_run / "README.md").read_text()
    assert "It reads sentence pairs" in (pairs_run / "README.md").read_text()
    assert card_of_folder(topics_run).name == "custom"


def test_a_pushed_seven_class_model_loads_by_name_with_its_names(hub, topics_run, tmp_path):
    pushed = run_script("push_to_hub.py", topics_run, "--hub_model_id", "org/topics", env=hub_env(hub))
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    files = hub.files("org/topics")
    assert json.loads(files["config.json"])["id2label"]["6"] == "transport"
    assert "eval_predictions.tsv" not in files and not mentions_sst2(files["README.md"].decode())
    # evaluated by its Hub name, without --task_name: the pushed config says which labels it has
    evaluated = run_script("run_glue_sst2.py", "--model_name_or_path", "org/topics", "--validation_file",
                           SAMPLE_DIR / "topics_dev.csv", "--do_eval", "--max_seq_length", 48, "--report_to", "none",
                           "--output_dir", tmp_path / "eval", env=hub_env(hub))
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads((tmp_path / "eval/eval_results.json").read_text())["eval_accuracy"] == pytest.approx(
        json.loads((topics_run / "eval_results.json").read_text())["eval_accuracy"])


def test_compare_runs_shows_both_texts_of_a_pair(pairs_run, tmp_path, capsys):
    import compare_runs
    from conftest import run_main_with_output

    other = tmp_path / "other"
    other.mkdir()
    lines = (pairs_run / "eval_predictions.tsv").read_text().splitlines()
    index, gold, predicted, probability, *texts = lines[1].split("\t")
    flipped = next(name for name in ("entailment", "neutral") if name != predicted)
    lines[1] = "\t".join([index, gold, flipped, probability, *texts])
    (other / "eval_predictions.tsv").write_text("\n".join(lines) + "\n")
    code, out, err = run_main_with_output(compare_runs, [pairs_run, other, "--output_dir", tmp_path / "cmp"], capsys)
    assert code == 0, err
    [row] = read_tsv(tmp_path / "cmp/disagreements.tsv")
    assert (row["index"], row["B_predicted"], row["sentence"], row["sentence_pair"]) == ("0", flipped, *texts)
    assert "A and B disagree on 1." in out


def test_training_args_of_both_scripts_load_in_a_fresh_process(topics_run, tmp_path, capsys):
    squad = tmp_path / "squad"
    code, err = run_main_in_process(run_squad, [
        *TINY_MODEL, "--train_file", SAMPLE_DIR / "squad_train.json", "--do_train", "--max_train_samples", 8,
        "--max_seq_length", 96, "--doc_stride", 16, "--num_train_epochs", 1, "--save_strategy", "no",
        "--report_to", "none", "--output_dir", squad], capsys)
    assert code == 0, err
    load = ("import sys, torch\nfor path in sys.argv[1:]:\n"
            "    args = torch.load(path, weights_only=False)\n    print(type(args).__module__, args.output_dir)")
    result = run_python("-c", load, topics_run / "training_args.bin", squad / "training_args.bin", cwd=REPO_DIR)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "finetune.tasks.classification_data", "finetune.tasks.question_answering"]


def test_float_labels_train_a_regression(tmp_path):
    rows = [{"sentence1": f"the {w} is old .", "sentence2": f"the {w} is red .", "label": 0.5 + i % 4}
            for i, w in enumerate(["cheese", "fish", "river", "film", "train", "church", "wool", "mayor"] * 6)]
    data = tmp_path / "scores.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    output_dir = train(tmp_path / "out", "--task_name", "custom", "--train_file", data, "--validation_file", data,
                       epochs=1)
    config = json.loads((output_dir / "config.json").read_text())
    assert config["problem_type"] == "regression" and len(config["id2label"]) == 1
    # strict JSON: a correlation undefined on every resample (constant predictions) gets no interval, not NaN
    results = json.loads((output_dir / "eval_results.json").read_text(), parse_constant=pytest.fail)
    assert {"eval_pearson", "eval_spearmanr", "eval_mse"} <= set(results) and "eval_per_class" not in results
    failures = read_tsv(output_dir / "eval_failures.tsv")
    assert [abs(float(f["error"])) for f in failures] == sorted((abs(float(f["error"])) for f in failures),
                                                                 reverse=True)


# ---- Bad input: one line naming the file and row, exit code 2, nothing written


@pytest.mark.parametrize("train_text, dev_text, flags, message", [
    ("text,label\na,x\nb,y\n", "text,label\nc,x\nd,z\n", ["--task_name", "custom"],
     "dev.csv, line 3: label 'z' is not 0/1 or x/y"),
    ('{"premise": "a", "label": "x"}\n{"premise": "b", "label": "y"}\n', None, ["--task_name", "mnli"],
     "train.jsonl: no column 'hypothesis' for the second text of each pair"),
    ("sentence,label\na,0.5\nb,1\n", None, ["--task_name", "sst2"],
     "train.csv, line 2: label '0.5' is not 0/1 or negative/positive: a fraction is the score of a regression"),
    ("text,label\na,spam\nb,spam\n", None, ["--task_name", "custom"],
     "train.csv: every training row has the label 'spam': a classifier needs two or more labels"),
    ("text,label\na,1\nb,ham\n", None, ["--task_name", "custom"], "mixed label types (numbers at line 2, names at"),
    ("text,label\na,x\nb,y\n", None, ["--label_names", "x,x"], "--label_names 'x,x': give two or more distinct"),
])
def test_bad_classification_data_is_one_line(tmp_path, capsys, train_text, dev_text, flags, message):
    suffix = ".jsonl" if train_text.startswith("{") else ".csv"
    (tmp_path / f"train{suffix}").write_text(train_text)
    data = ["--train_file", tmp_path / f"train{suffix}"]
    if dev_text:
        (tmp_path / "dev.csv").write_text(dev_text)
        data += ["--validation_file", tmp_path / "dev.csv"]
    argv = [*FAST, *data, *flags, "--output_dir", tmp_path / "out"]
    if not dev_text:
        argv.remove("--do_eval")
    code, err = run_main_in_process(run_glue_sst2, argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "out").exists()


# ---- The task table and the metrics


def test_mnli_from_the_hub_evaluates_matched_and_mismatched():
    class Args:
        validation_file = train_file = test_file = None
        do_train = do_eval = do_predict = True

    assert split_sources(glue_task("mnli"), Args, Args) == [
        ("train", None, ""), ("validation_matched", None, ""), ("validation_mismatched", None, "_mm"),
        ("test_matched", None, "")]


def test_a_glue_pair_task_from_a_dataset_by_name(tmp_path, capsys):
    """--task_name rte reads sentence1 / sentence2 and GLUE's integer labels of a dataset by name (a Hub id for
    users; a local dataset folder here), and names them as GLUE does."""
    folder = tmp_path / "my-rte"
    folder.mkdir()
    dev = [json.loads(line) for line in (SAMPLE_DIR / "pairs_dev.jsonl").read_text().splitlines()]
    for split, part in (("train", dev[:40]), ("validation", dev[40:])):
        lines = [json.dumps({"sentence1": r["premise"], "sentence2": r["hypothesis"], "idx": i,
                             "label": int(r["label"] != "entailment")}) for i, r in enumerate(part)]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    argv = [*FAST, "--task_name", "rte", "--dataset_name", folder, "--num_train_epochs", 1, "--output_dir",
            tmp_path / "out"]
    code, err = run_main_in_process(run_glue_sst2, argv, capsys)
    assert code == 0, err
    config = json.loads((tmp_path / "out/config.json").read_text())
    assert config["id2label"] == {"0": "entailment", "1": "not_entailment"} and config["finetuning_task"] == "rte"
    gold = [row["gold"] for row in read_tsv(tmp_path / "out/eval_predictions.tsv")]
    assert gold == ["entailment" if r["label"] == "entailment" else "not_entailment" for r in dev[40:]]


def test_minus_one_is_a_label_where_the_data_has_it(tmp_path):
    from finetune.tasks.classification_data import DataArguments, build_dataset, own_task

    labelled = [("bad", "-1"), ("ok", 0), ("good", 1)]  # negative / neutral / positive
    rows = [{"text": text, "label": label, "_row": f"line {i}"} for i, (text, label) in enumerate(labelled)]
    names = labels_of(rows, "label", "f")
    assert names == ["-1", "0", "1"]
    dataset, _ = build_dataset(rows, "f", DataArguments(), "train", own_task(names))
    assert dataset["label"] == [0, 1, 2]


def test_label_sets_are_read_in_a_stable_order():
    rows = [{"label": value, "_row": f"line {i}"} for i, value in enumerate(["10", 2, "2", "9"])]
    assert labels_of(rows, "label", "f") == ["2", "9", "10"]
    assert labels_of([{"label": v, "_row": "x"} for v in ["b", "a", "c", "a"]], "label", "f") == ["a", "b", "c"]
    assert labels_of([{"label": v, "_row": "x"} for v in [1, 2.5]], "label", "f") is None  # a regression


def test_metrics_equal_hand_counts():
    predictions, references = [0, 1, 2, 2, 1, 0], [0, 1, 1, 2, 2, 0]
    # per class: 0 p1 r1 f1; 1 p1/2 r1/2 f1/2; 2 p1/2 r1/2 f1/2 -> macro F1 2/3; accuracy 4/6
    scores = metrics.classification_scores(predictions, references, 3)
    assert scores["accuracy"] == pytest.approx(4 / 6) and scores["f1"] == pytest.approx(2 / 3)
    # Gorodkin: (c*s - p.t) / sqrt((s^2 - p.p)(s^2 - t.t)), c=4, s=6, p=t=(2,2,2) -> (24-12)/(36-12) = 0.5
    assert scores["matthews_correlation"] == pytest.approx(0.5)
    binary = metrics.classification_scores([1, 0, 1, 1, 0, 0, 1, 0], [1, 1, 1, 0, 0, 0, 0, 0], 2)
    assert binary["f1"] == pytest.approx(4 / 7)  # of class 1: tp 2, predicted 4, actual 3
    scores = metrics.regression_scores([1, 2, 3, 4], [2, 4, 6, 9])
    assert scores["spearmanr"] == pytest.approx(1) and 0.98 < scores["pearson"] < 1


@pytest.mark.parametrize("recipe", sorted((REPO_DIR / "recipes/glue").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_glue_recipe_parses_and_names_its_task(recipe):
    from finetune.arguments import ModelArguments
    from finetune.cli import parse_args
    from finetune.tasks.classification_data import ClassificationTrainingArguments, DataArguments, resolve_task

    _, data_args, training_args = parse_args((ModelArguments, DataArguments, ClassificationTrainingArguments),
                                             [str(recipe)])
    task = resolve_task(data_args, training_args, {})
    assert task.name == recipe.stem and task.glue is not None
    header = recipe.read_text().split("\nmodel_name_or_path")[0]
    assert "# Reproduces transformers examples/" in header and "README.md" in header  # the source; figures: README
