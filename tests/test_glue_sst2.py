import csv
import gzip
import json
import re

import pytest
from conftest import REPO_DIR, SAMPLE_DIR, TINY_MODEL, report_data, run_main_in_process, run_script

import finetune.arguments
import finetune.cli
import finetune.data
import run_glue_sst2
from finetune.tasks.classification_data import build_dataset
from finetune.tasks.text_classification import GLUE_TASKS, glue_task

LABEL_NAMES = GLUE_TASKS["sst2"].labels

QUICKSTART = str(REPO_DIR / "recipes/sst2/quickstart.yaml")


def run_in_process(argv, capsys):
    return run_main_in_process(run_glue_sst2, argv, capsys)


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    """One real training run of the quickstart recipe (a few seconds), shared by the tests that read its outputs."""
    output_dir = tmp_path_factory.mktemp("quickstart")
    run_glue_sst2.main([QUICKSTART, "--output_dir", str(output_dir), "--logging_steps", "5"])
    return output_dir


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


# ---- Arguments


def test_recipe_values_are_used_and_command_line_overrides_win(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 3.0e-5\nmax_seq_length: 96\ndo_train: true\noutput_dir: from-recipe\n")
    model_args, data_args, training_args = finetune.cli.parse_args(
        (finetune.arguments.ModelArguments, run_glue_sst2.DataArguments, finetune.arguments.TrainingArguments),
        [str(recipe), "--max_seq_length", "32", "--output_dir", str(tmp_path / "cli")],
    )
    assert training_args.learning_rate == 3e-5 and training_args.do_train
    assert data_args.max_seq_length == 32
    assert training_args.output_dir == str(tmp_path / "cli")


def test_json_recipe_and_plain_flags(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"per_device_train_batch_size": 7, "output_dir": str(tmp_path)}))
    _, _, training_args = finetune.cli.parse_args(
        (finetune.arguments.ModelArguments, run_glue_sst2.DataArguments, finetune.arguments.TrainingArguments), [str(recipe)]
    )
    assert training_args.per_device_train_batch_size == 7
    _, data_args, _ = finetune.cli.parse_args(
        (finetune.arguments.ModelArguments, run_glue_sst2.DataArguments, finetune.arguments.TrainingArguments),
        ["--output_dir", str(tmp_path), "--text_column", "review"],
    )
    assert data_args.text_column == "review"


@pytest.mark.parametrize("content, message", [("learning_rat: 1e-5\n", "unknown key 'learning_rat'"),
                                              ("- a\n- b\n", "must be a mapping"),
                                              ("learning_rate: 1e-5\nseed: 1\nlearning_rate: 2e-5\n",
                                               "key 'learning_rate' is given twice")])  # YAML: the last would win
def test_bad_recipe_is_one_clear_error(tmp_path, capsys, content, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(content)
    code, err = run_in_process([recipe, "--output_dir", tmp_path / "out"], capsys)
    assert code == 2 and message in err and str(recipe) in err
    assert not (tmp_path / "out").exists()


# ---- Reading data


def test_glue_tsv_keeps_bare_quotes_and_reads_gzip(tmp_path):
    text = 'sentence\tlabel\nit \'s a "wonderful" , " moving film \t1\n"dull" \t0\n'
    (tmp_path / "a.tsv").write_text(text, encoding="utf-8")
    (tmp_path / "a.tsv.gz").write_bytes(gzip.compress(text.encode()))
    for name in ("a.tsv", "a.tsv.gz"):
        rows = finetune.data.read_records(tmp_path / name)
        assert [r["sentence"] for r in rows] == ['it \'s a "wonderful" , " moving film ', '"dull" ']
        assert [r["label"] for r in rows] == ["1", "0"]
        assert rows[1]["_row"] == "line 3"


def test_json_jsonl_csv_and_txt_inputs(tmp_path):
    records = [{"text": "great , \"really\"", "label": "positive"}, {"text": "bad", "label": "negative"}]
    (tmp_path / "a.json").write_text(json.dumps(records))
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress("\n".join(map(json.dumps, records)).encode()))
    (tmp_path / "a.csv").write_text('text,label\n"great , ""really""",positive\nbad,negative\n')
    for name in ("a.json", "a.jsonl.gz", "a.csv"):
        rows = finetune.data.read_records(tmp_path / name)
        assert [(r["text"], r["label"]) for r in rows] == [(r["text"], r["label"]) for r in records]
    (tmp_path / "a.txt").write_text("first sentence\n\nsecond one\n")
    assert [r["sentence"] for r in finetune.data.read_records(tmp_path / "a.txt")] == ["first sentence", "second one"]


def test_line_breaks_inside_fields_and_unicode_separators_in_text(tmp_path):
    """A quoted CSV field may span lines (as csv.writer writes it); U+2028, U+0085 and form feeds are text, not line
    ends, in every format (str.splitlines would split at them)."""
    (tmp_path / "a.csv").write_text('sentence,label\n"a great film.\r\nI loved it",1\nbad,0\n"x,\ny",z\n',
                                    newline="")
    rows = finetune.data.read_records(tmp_path / "a.csv")
    assert [(r["sentence"], r["label"], r["_row"]) for r in rows] == [
        ("a great film.\r\nI loved it", "1", "line 2"), ("bad", "0", "line 4"), ("x,\ny", "z", "line 5")]
    text = "one\u2028two\x85three\x0cfour"
    (tmp_path / "a.jsonl").write_text(json.dumps({"sentence": text, "label": 1}, ensure_ascii=False) + "\n")
    (tmp_path / "a.tsv").write_text(f"sentence\tlabel\n{text}\t1\r\n")
    (tmp_path / "a.txt").write_text(f"{text}\r\nlast\r")
    for name in ("a.jsonl", "a.tsv"):
        assert [(r["sentence"], r["label"]) for r in finetune.data.read_records(tmp_path / name)] in ([(text, 1)], [(text, "1")])
    assert [r["sentence"] for r in finetune.data.read_records(tmp_path / "a.txt")] == [text, "last"]


def test_label_names_and_numbers_map_to_the_sst2_ids():
    args = run_glue_sst2.DataArguments()
    named = [{"text": "good", "label": "Positive", "_row": "line 2"}, {"text": "bad", "label": "negative", "_row": "line 3"}]
    numbered = [{"sentence": "good", "label": 1, "_row": "record 0"}, {"sentence": "bad", "label": "0", "_row": "record 1"}]
    sst2 = glue_task("sst2")
    assert build_dataset(named, "f", args, "train", sst2)[0]["label"] == [1, 0]
    assert build_dataset(numbered, "f", args, "train", sst2)[0]["label"] == [1, 0]
    glue_test = [{"sentence": "x", "label": -1, "_row": "row 0"}]
    assert build_dataset(glue_test, "f", args, "test", sst2)[0]["sentence"] == ["x"]  # a test split keeps no labels


# ---- Metrics and outputs of a real run


def test_training_loss_goes_down_and_config_carries_label_names(quickstart_run):
    state = json.loads((quickstart_run / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) >= 3 and losses[-1] < 0.5 * losses[0]
    config = json.loads((quickstart_run / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}


def test_eval_accuracy_equals_the_count_of_failures(quickstart_run):
    results = json.loads((quickstart_run / "eval_results.json").read_text())
    dev_rows = len(finetune.data.read_records(SAMPLE_DIR / "sst2_dev.tsv"))
    failures = read_tsv(quickstart_run / "eval_failures.tsv")
    assert results["eval_samples"] == dev_rows
    assert results["eval_accuracy"] == pytest.approx((dev_rows - len(failures)) / dev_rows)
    assert results["eval_accuracy"] > 0.8  # the sample sentences are learnable; ~5% carry a flipped label
    all_results = json.loads((quickstart_run / "all_results.json").read_text())
    assert all_results["eval_accuracy"] == results["eval_accuracy"] and "train_loss" in all_results


def test_every_metric_has_a_bootstrap_interval_close_to_the_binomial_one(quickstart_run):
    results = json.loads((quickstart_run / "eval_results.json").read_text())
    for name in ("accuracy", "f1"):
        assert results[f"eval_{name}_ci_low"] <= results[f"eval_{name}_ci_high"]
        assert results[f"eval_{name}_ci_low"] <= results[f"eval_{name}"] <= results[f"eval_{name}_ci_high"]
    p, n = results["eval_accuracy"], results["eval_samples"]
    binomial = 2 * 1.96 * (p * (1 - p) / n) ** 0.5
    assert 0.7 * binomial < results["eval_accuracy_ci_high"] - results["eval_accuracy_ci_low"] < 1.3 * binomial
    assert "(95% CI " in (quickstart_run / "README.md").read_text()


def test_failure_report_lists_mistakes_most_confident_first(quickstart_run):
    failures = read_tsv(quickstart_run / "eval_failures.tsv")
    dev = {i: row for i, row in enumerate(finetune.data.read_records(SAMPLE_DIR / "sst2_dev.tsv"))}
    assert failures, "the sample dev set holds flipped labels, so some sentences must be misclassified"
    probabilities = [float(f["probability"]) for f in failures]
    assert probabilities == sorted(probabilities, reverse=True)
    for failure in failures:
        gold = dev[int(failure["index"])]
        assert failure["sentence"] == gold["sentence"]
        assert failure["gold"] == LABEL_NAMES[int(gold["label"])] != failure["predicted"]


def test_failure_page_and_every_prediction_agree_with_the_failure_report(quickstart_run):
    """eval_failures.html lists the rows of eval_failures.tsv in its order; eval_predictions.tsv holds every
    validation sentence, and its mistakes are those rows."""
    failures = read_tsv(quickstart_run / "eval_failures.tsv")
    page = report_data((quickstart_run / "eval_failures.html").read_text(encoding="utf-8"))
    listed = [(str(r["index"]), r["gold"], r["predicted"], f"{r['confidence']:.4f}", r["sentence"])
              for r in page["rows"]]
    assert listed == [(f["index"], f["gold"], f["predicted"], f["probability"], f["sentence"]) for f in failures]
    predictions = read_tsv(quickstart_run / "eval_predictions.tsv")
    dev = finetune.data.read_records(SAMPLE_DIR / "sst2_dev.tsv")
    assert [(p["index"], p["sentence"], p["gold"]) for p in predictions] == [
        (str(i), row["sentence"], LABEL_NAMES[int(row["label"])]) for i, row in enumerate(dev)]
    assert sorted((p for p in predictions if p["predicted"] != p["gold"]), key=lambda p: p["index"]) == \
        sorted(failures, key=lambda f: f["index"])


def test_prediction_file_has_a_named_label_for_every_test_sentence(quickstart_run):
    predictions = read_tsv(quickstart_run / "predict_results.tsv")
    test_rows = finetune.data.read_records(SAMPLE_DIR / "sst2_test.tsv")
    assert [p["sentence"] for p in predictions] == [r["sentence"] for r in test_rows]
    assert {p["prediction"] for p in predictions} <= {"negative", "positive"}
    assert all(0.5 <= float(p["probability"]) <= 1 for p in predictions)
    # the templates make the answer obvious: a positive adjective means positive
    positive_words = {"wonderful", "moving", "funny", "brilliant", "charming"}
    obvious = [p for p in predictions if positive_words & set(p["sentence"].split())]
    assert sum(p["prediction"] == "positive" for p in obvious) >= 0.8 * len(obvious)


def test_predict_only_from_the_trained_folder_on_a_txt_file(quickstart_run, tmp_path, capsys):
    sentences = tmp_path / "s.txt"
    sentences.write_text("the film is wonderful .\nthe script is awful .\n")
    code, err = run_in_process(["--model_name_or_path", quickstart_run, "--test_file", sentences, "--do_predict",
                                "--text_column", "review",  # names the column of other files; a .txt has none
                                "--output_dir", tmp_path / "pred"], capsys)
    assert code == 0, err
    predictions = read_tsv(tmp_path / "pred/predict_results.tsv")
    assert [p["prediction"] for p in predictions] == ["positive", "negative"]


def test_tabs_and_line_breaks_in_sentences_keep_the_reports_one_row_each(quickstart_run, tmp_path, capsys):
    rows = [{"sentence": "the film is\twonderful .\nreally", "label": 0}, {"sentence": "awful\r\n.", "label": 1}]
    (tmp_path / "odd.json").write_text(json.dumps(rows))
    code, err = run_in_process(["--model_name_or_path", quickstart_run, "--validation_file", tmp_path / "odd.json",
                                "--test_file", tmp_path / "odd.json", "--do_eval", "--do_predict",
                                "--output_dir", tmp_path / "out"], capsys)
    assert code == 0, err
    for name, expected_rows in (("predict_results.tsv", 2), ("eval_failures.tsv", None)):
        lines = (tmp_path / "out" / name).read_text().splitlines()
        assert all(line.count("\t") == lines[0].count("\t") for line in lines), lines
        if expected_rows:
            assert [line.split("\t")[-1] for line in lines[1:]] == ["the film is wonderful . really", "awful ."]


# ---- Bad input: one line naming the file and row, exit code 2, nothing written


def bad_input_case(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


BAD_TRAIN_FILES = [
    ("empty.tsv", "", "is empty"),
    ("header.tsv", "sentence\tlabel\n", "no data rows"),
    ("labels.tsv", "sentence\tlabel\ngood \t1\nbad \t2\n", "line 3: label '2' is outside the label set"),
    ("mixed.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "negative"}\n', "mixed label types"),
    ("column.csv", "review,label\ngood,1\n", "no 'sentence' or 'text' column"),
    ("latin1.tsv", "sentence\tlabel\ngood \t1\ncaf\xe9 \t0\n".encode("latin-1"), "line 3: bytes that are not UTF-8"),
    ("fields.tsv", "sentence\tlabel\ngood \t1\nbad\tx \t0\n", "line 3: 3 fields where the header has 2"),
    ("broken.json", '[{"sentence": "a", "label": 1},', "broken JSON"),
    ("nolabel.tsv", "sentence\tlabel\ngood \t1\nbad \t\n", "line 3: missing label"),
    ("emptytext.tsv", "sentence\tlabel\ngood \t1\n\t0\n", "line 3: empty or missing 'sentence'"),
    ("numbertext.json", '[{"sentence": 12, "label": 1}]', "record 0: 'sentence' is int 12, not text"),
    ("superscript.tsv", "sentence\tlabel\ngood \t\u00b9\n", "line 2: label '\u00b9' is not 0/1"),  # "¹".isdigit()
]


@pytest.mark.parametrize("name, content, message", BAD_TRAIN_FILES)
def test_bad_training_file_is_rejected_before_anything_is_written(tmp_path, capsys, name, content, message):
    path = bad_input_case(tmp_path, name, content)
    output_dir = tmp_path / "out"
    code, err = run_in_process(["--train_file", path, "--do_train", "--output_dir", output_dir, *TINY_MODEL], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0] and message in lines[0], err
    assert not output_dir.exists()


def test_missing_file_and_unknown_text_column(tmp_path, capsys):
    code, err = run_in_process(["--train_file", tmp_path / "nope.tsv", "--do_train", "--output_dir", tmp_path / "o",
                                *TINY_MODEL], capsys)
    assert code == 2 and "nope.tsv: file not found" in err
    code, err = run_in_process(["--train_file", SAMPLE_DIR / "sst2_train.tsv", "--text_column", "review", "--do_train",
                                "--output_dir", tmp_path / "o", *TINY_MODEL], capsys)
    assert code == 2 and "no column 'review'" in err
    assert not (tmp_path / "o").exists()


def test_bad_input_from_the_command_line_exits_non_zero_with_one_line(tmp_path):
    empty = bad_input_case(tmp_path, "empty.tsv", "")
    result = run_script("run_glue_sst2.py", "--train_file", empty, "--do_train", "--output_dir", tmp_path / "out",
                        *TINY_MODEL)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: {empty}: the file is empty; it needs a header and at least one row"
    assert not (tmp_path / "out").exists()


def test_dataset_by_name_with_glue_schema_and_unlabeled_test_split(tmp_path, capsys):
    """--dataset_name goes through datasets.load_dataset (a Hub id for users; a local dataset folder here)."""
    folder = tmp_path / "my-sst2"
    folder.mkdir()
    rows = finetune.data.read_records(SAMPLE_DIR / "sst2_train.tsv")
    for split, part in [("train", rows[:200]), ("validation", rows[200:260]), ("test", rows[260:280])]:
        lines = [json.dumps({"sentence": r["sentence"], "label": -1 if split == "test" else int(r["label"]), "idx": i})
                 for i, r in enumerate(part)]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    code, err = run_in_process([QUICKSTART, "--train_file", "", "--validation_file", "", "--test_file", "",
                                "--dataset_name", folder, "--num_train_epochs", "1", "--output_dir", tmp_path / "o"],
                               capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "o/eval_results.json").read_text())
    assert results["eval_samples"] == 60
    assert len(read_tsv(tmp_path / "o/predict_results.tsv")) == 20


def test_the_model_cards_usage_snippet_classifies(quickstart_run, capsys):
    exec(glue_task("sst2").card.usage_snippet(str(quickstart_run)), {})
    assert re.match(r"\[\{'label': '(positive|negative)', 'score': ", capsys.readouterr().out.strip().splitlines()[-1])
