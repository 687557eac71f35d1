"""The benchmark harness (benchmarks/): each script runs at tiny scale on a CPU (the fast recipes' settings are checked
in test_speed_settings.py). GPU numbers come from benchmarks/gpu_benchmarks.sh, which these tests do not run."""

import gzip
import json
import re

from conftest import REPO_DIR, SAMPLE_DIR, run_script

TINY = REPO_DIR / "assets" / "tiny-bert"


def test_throughput_bench_tiny_cpu(tmp_path):
    out = tmp_path / "throughput.jsonl"
    result = run_script(
        "benchmarks/bench_train_throughput.py", "--configs", "tiny:fp32:max:4", "tiny:fp32:dynamic:4",
        "tiny:fp32:grouped:4", "--steps", "2", "--warmup", "1", "--squad_file", SAMPLE_DIR / "squad_train.json",
        "--tokenizer", TINY, "--questions", "60", "--max_seq_length", "64", "--doc_stride", "16",
        "--device", "cpu", "--peak_tflops", "1.0", "--out", out,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert "environment" in records[0]
    rows = {r["config"]: r for r in records[1:]}
    assert set(rows) == {"tiny:fp32:max:4", "tiny:fp32:dynamic:4", "tiny:fp32:grouped:4"}
    for row in rows.values():
        assert row["samples_per_s"] > 0 and 0 < row["mfu"] <= row["hfu"]
    # Padding to max_seq_length computes at least as much padding as padding to the batch's longest window.
    assert rows["tiny:fp32:max:4"]["padding_fraction"] >= rows["tiny:fp32:dynamic:4"]["padding_fraction"]
    assert "| tiny:fp32:grouped:4 |" in result.stdout

    png = tmp_path / "throughput.png"
    result = run_script("benchmarks/plot_training.py", "throughput", out, "--out", png)
    assert result.returncode == 0, result.stderr[-2000:]
    assert png.read_bytes().startswith(b"\x89PNG")


def test_throughput_bench_rejects_bad_config(tmp_path):
    result = run_script("benchmarks/bench_train_throughput.py", "--configs", "tiny:fp8:max:4", "--squad_file",
                        SAMPLE_DIR / "squad_train.json", "--tokenizer", TINY, "--questions", "60",
                        "--device", "cpu", "--peak_tflops", "1.0")
    assert result.returncode != 0
    assert "precision fp32|tf32|bf16" in result.stderr


def test_preprocess_bench_checks_identical_features_with_workers():
    result = run_script("benchmarks/bench_preprocess.py", "--squad_dir", SAMPLE_DIR, "--train_file",
                        "squad_train.json", "--tokenizer_name", TINY, "--num_proc", "2", "--pad_to_max_length")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "identical features" in result.stdout and "padded to 384" in result.stdout
    assert "speed-up:" in result.stdout and "ours, in-memory shards:" in result.stdout  # the three ways agree
    result = run_script("benchmarks/bench_preprocess.py", "--squad_dir", SAMPLE_DIR, "--train_file",
                        "squad_train.json", "--tokenizer_name", TINY, "--num_proc", "2", "--ours_only")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "\nours:" in result.stdout and "tokenizer-cut" not in result.stdout  # only ours, timed


def test_overflow_coverage_finds_every_answer_inside_a_window_with_the_pinned_tokenizers():
    result = run_script("benchmarks/overflow_coverage.py", "--squad_file", SAMPLE_DIR / "squad_train.json",
                        "--tokenizer_name", TINY, "--max_seq_length", "32", "--doc_stride", "8")
    assert result.returncode == 0, result.stderr[-2000:]
    questions, windows, missed = (int(n) for n in
                                  re.search(r"(\d+) questions, (\d+) windows, (\d+) questions", result.stdout).groups())
    assert windows > 3 * questions and missed == 0  # contexts needed several windows; none lost its end (0.23.2: 167)


def test_training_curves_plot(tmp_path):
    state = {"global_step": 30, "epoch": 3.0, "log_history": [
        {"step": 10, "loss": 0.7}, {"step": 10, "eval_accuracy": 0.6, "eval_loss": 0.6},
        {"step": 20, "loss": 0.5}, {"step": 20, "eval_accuracy": 0.8}, {"step": 30, "loss": 0.3}]}
    (tmp_path / "trainer_state.json").write_text(json.dumps(state))
    (tmp_path / "eval_results.json").write_text(json.dumps({"eval_accuracy": 0.9, "eval_runtime": 1.0}))
    result = run_script("benchmarks/plot_training.py", "curves", tmp_path, "--out", tmp_path / "curves.png")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")

    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": []}))
    (tmp_path / "eval_results.json").unlink()
    result = run_script("benchmarks/plot_training.py", "curves", tmp_path, "--out", tmp_path / "empty.png")
    assert result.returncode != 0 and "no loss and no eval metric" in result.stderr


def test_flatten_squad_keeps_every_question(tmp_path):
    source = json.loads((SAMPLE_DIR / "squad_train.json").read_text())
    gz = tmp_path / "train.json.gz"
    gz.write_bytes(gzip.compress(json.dumps(source).encode()))
    result = run_script("benchmarks/flatten_squad.py", gz, tmp_path / "flat.json")
    assert result.returncode == 0, result.stderr[-2000:]
    flat = json.loads((tmp_path / "flat.json").read_text())["data"]
    questions = [(p["context"], qa) for a in source["data"] for p in a["paragraphs"] for qa in p["qas"]]
    assert len(flat) == len(questions)
    for record, (context, qa) in zip(flat, questions):
        assert record["id"] == qa["id"] and record["context"] == context and record["question"] == qa["question"]
        assert record["answers"]["text"] == [a["text"] for a in qa["answers"]]
        assert record["answers"]["answer_start"] == [a["answer_start"] for a in qa["answers"]]


def test_gpu_benchmarks_script_is_valid_bash():
    import subprocess

    result = subprocess.run(["bash", "-n", str(REPO_DIR / "benchmarks" / "gpu_benchmarks.sh")], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_trainer_step_bench_runs_its_variants_on_cpu(tmp_path):
    """The Trainer step-time harness (benchmarks/bench_trainer_steps.py) end to end on the tiny model: one JSON row
    per variant with a positive step time, and the profiled variant carries its profile."""
    out = tmp_path / "steps.jsonl"
    # Two runs appending to one file: nosync and grouped each start 4 persistent loader workers, and in one process
    # the second variant's start waits 4 x 5 s for the first one's workers to stop.
    for variants in (["baseline", "nosync"], ["grouped", "--profile", "grouped"]):
        result = run_script("benchmarks/bench_trainer_steps.py", "--model", REPO_DIR / "assets/tiny-bert",
                            "--random_init", "--squad_file", REPO_DIR / "data/sample/squad_train.json", "--steps", 3,
                            "--warm", 1, "--questions", 20, "--batch_size", 4, "--max_seq_length", 64,
                            "--doc_stride", 16, "--variants", *variants, "--out", out)
        assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["baseline", "nosync", "grouped"]
    assert all(r["ms_per_step"] > 0 and r["samples_per_s"] > 0 for r in rows)
    assert rows[2]["profile_wall_ms_per_step"] > 0 and "profile_wall_ms_per_step" not in rows[0]
    assert "| grouped |" in result.stdout


def test_qa_pipeline_bench_times_both_ways_on_the_same_answers(tmp_path):
    """benchmarks/bench_qa_pipeline.py on the tiny model (random weights): ours in batches of 4 windows (several
    batches, reordered by length) answers as the one-question loop does, and both ways get a speed."""
    out = tmp_path / "qa.json"
    result = run_script("benchmarks/bench_qa_pipeline.py", "--squad_file", SAMPLE_DIR / "squad_dev.json",
                        "--questions", 20, "--base_model", TINY, "--model_dir", tmp_path / "model", "--batch_size", 4,
                        "--repeats", 1, "--chunk", 10, "--warmup", 2, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record == json.loads(out.read_text())
    assert record["questions"] == 20 and record["loop_questions_per_s"] > 0
    [ours] = record["ours"]
    assert ours["batch_size"] == 4 and ours["questions_per_s"] > 0 and ours["different_answers"] == 0
    assert "| ours, batch 4 | 20 |" in result.stdout and "| one question at a time | 20 |" in result.stdout


def test_squad_ablation_runs_every_row_on_the_same_data(tmp_path):
    """benchmarks/ablate_squad.py at tiny scale: every row trains (or, argmax, evaluates the default row's model) on
    the same questions, and truncation leaves one window a question."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    model = tmp_path / "tiny-qa"
    AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(TINY)).save_pretrained(model)
    AutoTokenizer.from_pretrained(TINY).save_pretrained(model)
    out = tmp_path / "rows.jsonl"
    result = run_script("benchmarks/ablate_squad.py", "--model", model, "--train_file", SAMPLE_DIR / "squad_train.json",
                        "--dev_file", SAMPLE_DIR / "squad_dev.json", "--train_questions", 16, "--eval_questions", 12,
                        "--epochs", 1, "--batch_size", 16, "--work_dir", tmp_path / "work", "--out", out, "--",
                        "--doc_stride", 16, "--max_query_length", 16, "--cpu_threads", 1)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["row"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(rows) == ["default", "windows-256", "truncation", "question-mask", "argmax", "notebook"]
    assert all(r["eval_questions"] == 12 and 0 <= r["exact_match"] <= r["f1"] <= 100 for r in rows.values())
    assert rows["argmax"]["model_from"] == "default" and rows["argmax"]["train_s"] == 0
    assert rows["truncation"]["train_windows"] == rows["notebook"]["train_windows"] == 16  # one window a question
    assert rows["windows-256"]["train_windows"] >= 16 and rows["default"]["train_windows"] >= 16
    assert "| notebook | `--max_seq_length 256 --first_window_only" in result.stdout


def test_squad_ablation_table_over_seeds():
    """--table: each row's EM and F1 as mean ± sample std over its seeds, and its F1 minus the default row's F1 of
    the same seed; a seed's later line replaces an earlier one."""
    import sys

    sys.path.insert(0, str(REPO_DIR / "benchmarks"))
    from ablate_squad import seed_table

    def line(row, seed, em, f1, flags=""):
        return {"row": row, "seed": seed, "flags": flags, "exact_match": em, "f1": f1}

    records = [line("default", 1, 40.0, 50.0), line("default", 2, 42.0, 54.0), line("default", 2, 44.0, 56.0),
               line("notebook", 2, 5.0, 9.0, "--first_window_only"), line("notebook", 1, 4.0, 8.0, "--first_window_only"),
               line("windows-256", 1, 41.0, 51.0), line("windows-256", 2, 42.0, 57.0)]
    table = seed_table(records).splitlines()
    assert table[2] == "| default | `(none)` | 2 | 42.00 ± 2.83 | 53.00 ± 4.24 | 50.00 (1), 56.00 (2) | — |"
    assert table[3].endswith("| 51.00 (1), 57.00 (2) | +1.00 ± 0.00 |")  # rows in the script's order
    # paired differences: 8 − 50 = −42 and 9 − 56 = −47
    assert table[4] == ("| notebook | `--first_window_only` | 2 | 4.50 ± 0.71 | 8.50 ± 0.71 | 8.00 (1), 9.00 (2) | "
                        "-44.50 ± 3.54 |")
