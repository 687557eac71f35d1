import csv
import gc
import json
import re

import pytest
from conftest import REPO_DIR, SAMPLE_DIR, TINY_MODEL, report_data, run_main_in_process, run_script

import run_squad
from finetune.qa_report import squad_scoring
from finetune.stats import score_intervals

QUICKSTART = str(REPO_DIR / "recipes/squad/quickstart.yaml")
FAST = ["--num_train_epochs", "2", "--max_train_samples", "96", "--logging_steps", "5"]


def run_in_process(argv, capsys):
    return run_main_in_process(run_squad, argv, capsys)


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    """The quickstart recipe as a user runs it (a new interpreter: its wall-time line counts the imports), shortened;
    shared by the tests reading its files."""
    output_dir = tmp_path_factory.mktemp("squad-quickstart")
    result = run_script("run_squad.py", QUICKSTART, "--output_dir", output_dir, *FAST, new_interpreter=True)
    assert result.returncode == 0, result.stderr[-3000:]
    (output_dir.parent / "stdout.txt").write_text(result.stdout)
    return output_dir


def test_run_prints_where_its_wall_time_went(quickstart_run):
    lines = [line for line in (quickstart_run.parent / "stdout.txt").read_text().splitlines()
             if line.startswith("Wall time, seconds per phase:")]
    assert len(lines) == 1
    phases = re.findall(r"([a-z-]+) (\d+\.\d)", lines[0])
    assert [name for name, _ in phases] == ["imports", "arguments", "data", "model", "windows", "train", "evaluate",
                                            "predict", "total"]
    seconds = {name: float(value) for name, value in phases}
    assert abs(sum(seconds.values()) - 2 * seconds["total"]) <= 0.05 * len(phases)  # the phases add up (rounding)
    assert seconds["imports"] >= 0.5  # counted from the process's start: importing torch alone takes longer
    assert seconds["train"] > 0


def test_train_eval_predict_writes_results_predictions_and_failures(quickstart_run):
    results = json.loads((quickstart_run / "eval_results.json").read_text())
    assert {"eval_exact_match", "eval_f1", "eval_samples"} <= set(results)
    assert 0 <= results["eval_exact_match"] <= results["eval_f1"] <= 100
    dev_ids = {r["id"] for r in run_squad.load_squad_file(SAMPLE_DIR / "squad_dev.json")}
    predictions = json.loads((quickstart_run / "eval_predictions.json").read_text())
    assert set(predictions) == dev_ids
    test_ids = {r["id"] for r in json.loads((SAMPLE_DIR / "squad_test.json").read_text())}
    assert set(json.loads((quickstart_run / "predict_predictions.json").read_text())) == test_ids
    assert (quickstart_run / "model.safetensors").exists() and (quickstart_run / "train_results.json").exists()
    assert not list(quickstart_run.glob(".*.tmp"))  # atomic writes leave no temp files


def test_each_headline_metric_has_the_bootstrap_interval_of_its_questions(quickstart_run):
    results = json.loads((quickstart_run / "eval_results.json").read_text())
    predictions = json.loads((quickstart_run / "eval_predictions.json").read_text())
    scoring = squad_scoring()
    scores = [scoring.question_scores(predictions[r["id"]], r["answers"]["text"])
              for r in run_squad.load_squad_file(SAMPLE_DIR / "squad_dev.json")]
    expected = score_intervals({"exact_match": [100 * em for em, _ in scores], "f1": [100 * f1 for _, f1 in scores]})
    for name in ("exact_match", "f1"):
        low, high = results[f"eval_{name}_ci_low"], results[f"eval_{name}_ci_high"]
        assert (low, high) == expected[name] and low < results[f"eval_{name}"] < high
    card = (quickstart_run / "README.md").read_text()
    assert (f"- F1: {results['eval_f1']:.4f} (95% CI {results['eval_f1_ci_low']:.4f}–"
            f"{results['eval_f1_ci_high']:.4f}, {results['eval_samples']} questions)") in card
    assert "Ci Low" not in card  # the training results table leaves the intervals to the results section


def read_failures(output_dir):
    with open(output_dir / "eval_failures.tsv", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_failure_report_lists_every_question_below_f1_1_worst_first_with_its_windows(quickstart_run):
    results = json.loads((quickstart_run / "eval_results.json").read_text())
    records = {r["id"]: r for r in run_squad.load_squad_file(SAMPLE_DIR / "squad_dev.json")}
    predictions = json.loads((quickstart_run / "eval_predictions.json").read_text())
    failures = read_failures(quickstart_run)
    scores = squad_scoring()
    f1 = {qid: max(scores.f1_score(predictions[qid], gold) for gold in r["answers"]["text"])
          for qid, r in records.items()}
    assert [row["id"] for row in failures] == sorted((q for q in records if f1[q] < 1), key=lambda q: f1[q])
    assert 0 < len(failures) < len(records)  # a quickstart model gets some right, some wrong
    # the F1 the report lists is the metric's: its mean over all questions is eval_f1
    assert sum(float(row["f1"]) for row in failures) + len(records) - len(failures) == pytest.approx(
        results["eval_f1"] / 100 * len(records), abs=0.001 * len(records))
    windows = []
    for row in failures:
        record = records[row["id"]]
        assert row["kind"] == ("miss" if float(row["f1"]) == 0 else "partial")
        assert row["context"] == record["context"] and row["question"] == record["question"]
        assert int(row["gold_start_char"]) == record["answers"]["answer_start"][0]
        window, of, first, last = map(int, re.fullmatch(r"(\d+) of (\d+) \(tokens (\d+)-(\d+)\)",
                                                        row["predicted_window"]).groups())
        assert 1 <= window <= of and 0 <= first <= last < int(row["context_tokens"])
        windows.append(of)
        assert row["gold_in_windows"] != "none"  # with a stride, some window holds every (short) gold answer
        gold_first, gold_last = map(int, row["gold_tokens"].split("-"))
        holds = first <= gold_first and gold_last <= last
        assert holds == (str(window) in row["gold_in_windows"].split(","))  # the prediction's window
    assert max(windows) >= 2  # windows of 64 tokens: most contexts need several
    page = (quickstart_run / "eval_failures.html").read_text(encoding="utf-8")
    assert [row["id"] for row in report_data(page)["rows"]] == [row["id"] for row in failures]


def test_the_notebooks_choices_evaluate_one_window_a_question_with_argmax_spans(quickstart_run, tmp_path, capsys):
    """--first_window_only --mask_question_attention --independent_argmax, evaluating the quickstart's model: the
    failure report shows what truncation did (gold answers no window holds) and every prediction from window 1."""
    code, err = run_in_process(["--model_name_or_path", quickstart_run, "--validation_file",
                                SAMPLE_DIR / "squad_dev.json", "--do_eval", "--max_seq_length", 64, "--doc_stride", 16,
                                "--max_query_length", 16, "--first_window_only", "--mask_question_attention",
                                "--independent_argmax", "--output_dir", tmp_path, "--report_to", "none"], capsys)
    assert code == 0, err
    failures = read_failures(tmp_path)
    assert all(row["predicted_window"].startswith("1 of 1 ") for row in failures)
    unreachable = [row for row in failures if row["gold_in_windows"] == "none"]
    assert unreachable and all(row["kind"] == "miss" for row in unreachable)
    results = json.loads((tmp_path / "eval_results.json").read_text())
    assert results["eval_f1"] < json.loads((quickstart_run / "eval_results.json").read_text())["eval_f1"]


def test_v2_eval_from_the_trained_folder_reports_squad_v2_keys(quickstart_run, tmp_path, capsys):
    code, err = run_in_process(["--model_name_or_path", quickstart_run, "--validation_file",
                                SAMPLE_DIR / "squad_v2_dev.json", "--version_2_with_negative", "--do_eval",
                                "--max_seq_length", 64, "--doc_stride", 16, "--max_query_length", 16,
                                "--output_dir", tmp_path, "--report_to", "none"], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "eval_results.json").read_text())
    expected = {"eval_exact", "eval_f1", "eval_HasAns_f1", "eval_NoAns_f1", "eval_best_f1", "eval_best_f1_thresh"}
    assert expected <= set(results)
    for name in ("exact", "f1", "HasAns_f1", "NoAns_exact"):
        assert results[f"eval_{name}_ci_low"] <= results[f"eval_{name}"] <= results[f"eval_{name}_ci_high"]
    null_odds = json.loads((tmp_path / "eval_null_odds.json").read_text())
    assert len(set(null_odds.values())) > 1  # real per-question odds, not a constant
    assert results["eval_best_f1"] >= results["eval_f1"]


def test_v2_the_suggested_threshold_gives_the_best_f1(quickstart_run, tmp_path, capsys):
    """The run prints the --null_score_diff_threshold of squad_v2's best F1; evaluating with it gives that F1."""
    import finetune.cli

    args = ["--model_name_or_path", quickstart_run, "--validation_file", SAMPLE_DIR / "squad_v2_dev.json",
            "--version_2_with_negative", "--do_eval", "--max_seq_length", 64, "--doc_stride", 16,
            "--max_query_length", 16, "--report_to", "none", "--bf16", "false"]  # bf16 odds tie at thresholds
    finetune.cli.run_main(lambda: run_squad.main([str(a) for a in [*args, "--output_dir", tmp_path / "first"]]))
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("SQuAD v2: --null_score_diff_threshold")]
    threshold = re.match(r"SQuAD v2: --null_score_diff_threshold (\S+) gives", line[0]).group(1)
    finetune.cli.run_main(lambda: run_squad.main([str(a) for a in [*args, "--output_dir", tmp_path / "second",
                                                            "--null_score_diff_threshold", threshold]]))
    first, second = (json.loads((tmp_path / run / "eval_results.json").read_text()) for run in ("first", "second"))
    assert second["eval_f1"] == pytest.approx(first["eval_best_f1"]) and first["eval_best_f1"] > first["eval_f1"]


def bad_file(tmp_path, document):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    return path


CONTEXT = "Marlow lies on the river Tess."
BAD_RUNS = [
    (["--doc_stride", 45], "--doc_stride 45 leaves no new context"),
    (["--n_best_size", 0], "--n_best_size must be at least 1"),
    (["--max_seq_length", 1024], "above the model's limit of 512"),
    (["--train_file", {"data": [{"paragraphs": [{"context": CONTEXT, "qas": [
        {"id": "a", "question": "q?", "answers": [{"text": "Tess", "answer_start": 25}]},
        {"id": "a", "question": "r?", "answers": [{"text": "Tess", "answer_start": 25}]}]}]}]}], "duplicate id"),
    (["--train_file", [{"id": "a", "context": CONTEXT, "question": "q?",
                        "answers": {"text": ["Tess"], "answer_start": [3]}}]], "answer_start 3 points at"),
]


@pytest.mark.parametrize("flags, message", BAD_RUNS)
def test_bad_input_is_one_line_before_anything_is_written(tmp_path, capsys, flags, message):
    flags = [bad_file(tmp_path, f) if isinstance(f, (dict, list)) else f for f in flags]
    output_dir = tmp_path / "out"
    code, err = run_in_process(["--train_file", SAMPLE_DIR / "squad_train.json", "--do_train", "--output_dir",
                                output_dir, "--max_seq_length", 64, "--max_query_length", 16, *TINY_MODEL, *flags],
                               capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not output_dir.exists()
    assert gc.isenabled()  # a bad file stops the loading while the cycle collector is paused: it must come back


def test_dynamic_padding_and_length_grouping_keep_each_window_with_its_logits(quickstart_run, tmp_path, capsys):
    """Batches padded to their longest window and length-grouped training must not reorder evaluation: every
    question still gets the answer of its own windows (a reordering would change nearly every answer)."""
    code, err = run_in_process(["--model_name_or_path", quickstart_run, "--validation_file",
                                SAMPLE_DIR / "squad_dev.json", "--do_eval", "--pad_to_max_length", "false",
                                "--train_sampling_strategy", "group_by_length", "--per_device_eval_batch_size", 5,
                                "--max_seq_length", 64, "--doc_stride", 16, "--max_query_length", 16,
                                "--output_dir", tmp_path, "--report_to", "none"], capsys)
    assert code == 0, err
    padded = json.loads((quickstart_run / "eval_predictions.json").read_text())
    dynamic = json.loads((tmp_path / "eval_predictions.json").read_text())
    same = sum(padded[qid] == dynamic[qid] for qid in padded)
    assert same >= 0.9 * len(padded)  # float noise may flip a near-tie; a reordering flips almost all


def test_dataset_by_name_with_the_squad_schema(tmp_path, capsys):
    """--dataset_name goes through datasets.load_dataset (rajpurkar/squad or any dataset of that schema for users; a
    local dataset folder here): answers as {text: [...], answer_start: [...]} columns."""
    folder = tmp_path / "my-squad"
    folder.mkdir()
    for split, name in [("train", "squad_train.json"), ("validation", "squad_dev.json")]:
        records = run_squad.load_squad_file(SAMPLE_DIR / name)[:40]
        rows = [{key: record[key] for key in ("id", "title", "context", "question", "answers")} for record in records]
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    code, err = run_in_process([QUICKSTART, "--train_file", "", "--validation_file", "", "--test_file", "",
                                "--do_predict", "false", "--dataset_name", folder, "--num_train_epochs", 1,
                                "--output_dir", tmp_path / "out"], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "out/eval_results.json").read_text())
    assert results["eval_samples"] == 40 and "eval_f1" in results


def test_the_model_cards_usage_snippet_answers_from_the_context(quickstart_run, capsys):
    """transformers 5 has no question-answering pipeline: the card's snippet loads the one the model folder carries
    (utils_qa.py, trust_remote_code) and prints an answer with its place in the context."""
    import ast

    exec(run_squad.CARDS[False].usage_snippet(str(quickstart_run)), {})
    answer = ast.literal_eval(capsys.readouterr().out.strip().splitlines()[-1])
    context = "The Eiffel Tower is a wrought-iron lattice tower in Paris, France."
    assert set(answer) == {"score", "start", "end", "answer"} and context[answer["start"]:answer["end"]] == answer["answer"]


def test_the_examples_column_name_flags_read_other_names(tmp_path):
    """run_qa.py's --question_column_name, --context_column_name and --answer_column_name, for flat files and Hub
    datasets of other column names."""
    records = run_squad.load_squad_file(SAMPLE_DIR / "squad_dev.json")[:5]
    renamed = [{"id": r["id"], "title": r["title"], "ask": r["question"], "passage": r["context"], "gold": r["answers"]}
               for r in records]
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in renamed) + "\n")
    args = run_squad.DataArguments(validation_file=str(tmp_path / "dev.jsonl"), question_column_name="ask",
                                   context_column_name="passage", answer_column_name="gold")
    assert run_squad.load_split(args, "validation") == records
