import json
import statistics
import sys

import pytest
from conftest import REPO_DIR, run_main_in_process, run_main_with_output, run_python

import run_seeds

QUICKSTART = str(REPO_DIR / "recipes/sst2/quickstart.yaml")
SMALL = ["--max_train_samples", "48", "--num_train_epochs", "1", "--do_predict", "false", "--save_strategy", "no"]
# A stand-in for a training script: writes eval_results.json, or ends as a diverged run does for seed 2
FAKE_SCRIPT = """
import json, os, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
seed = int(args["--seed"])
if seed == 2:
    print("error: training diverged: the loss or the weights became NaN/inf at step 3", file=sys.stderr)
    sys.exit(2)
os.makedirs(args["--output_dir"], exist_ok=True)
with open(os.path.join(args["--output_dir"], "eval_results.json"), "w") as f:
    json.dump({"eval_accuracy": seed / 10, "eval_accuracy_ci_low": 0, "eval_runtime": 1.0}, f)
"""


@pytest.fixture
def launches(monkeypatch):
    """Each seed's run forked from the script server (no interpreter start-up); the commands run_seeds gave."""
    commands = []

    def launch(command):
        assert command[0] == sys.executable
        commands.append(command)
        process = run_python(*command[1:])
        sys.stderr.write(process.stderr)
        return process.returncode, run_seeds.DIVERGED in process.stderr
    monkeypatch.setattr(run_seeds, "launch", launch)
    return commands


def test_three_seeds_are_summarized_and_a_rerun_trains_nothing(tmp_path, capsys, launches):
    argv = ["run_glue_sst2.py", QUICKSTART, *SMALL, "--output_dir", tmp_path, "--seeds", "3,1,2"]
    code, err = run_main_in_process(run_seeds, argv, capsys)
    assert code == 0, err
    assert [c[-3:] for c in launches] == [[str(seed), "--output_dir", str(tmp_path / f"seed-{seed}")]
                                           for seed in (3, 1, 2)]
    results = {seed: json.loads((tmp_path / f"seed-{seed}" / "eval_results.json").read_text()) for seed in (1, 2, 3)}
    assert {seed: r["eval_samples"] for seed, r in results.items()} == {1: 120, 2: 120, 3: 120}
    summary = json.loads((tmp_path / "seeds_summary.json").read_text())
    assert set(summary) == {"loss", "accuracy", "f1"}
    for name, entry in summary.items():
        values = [results[seed][f"eval_{name}"] for seed in (3, 1, 2)]
        assert entry["values"] == {"3": values[0], "1": values[1], "2": values[2]}
        assert entry["mean"] == pytest.approx(statistics.mean(values))
        assert entry["std"] == pytest.approx(statistics.stdev(values))
        assert (entry["min"], entry["max"], entry["n"], entry["diverged"]) == (min(values), max(values), 3, [])
    table = (tmp_path / "seeds_summary.md").read_text()
    assert "| accuracy |" in table and "seed 3 | seed 1 | seed 2" in table
    assert (tmp_path / "seeds_summary.png").read_bytes().startswith(b"\x89PNG")

    launches.clear()
    code, err = run_main_in_process(run_seeds, [*argv[:-1], "1,2,3,4"], capsys)
    assert code == 0, err
    assert [c[-1] for c in launches] == [str(tmp_path / "seed-4")]  # seeds 1-3 had finished
    assert json.loads((tmp_path / "seeds_summary.json").read_text())["accuracy"]["n"] == 4
    launches.clear()
    code, err = run_main_in_process(run_seeds, [*argv[:-4], "--learning_rate", "1e-4", *argv[-4:]], capsys)
    assert code == 2 and len(launches) == 1  # another command: seed 3's folder is refused by the script
    assert "belongs to another run" in err and "seed 3 failed" in err


def test_a_diverged_seed_is_listed_not_averaged(tmp_path, capsys):
    script = tmp_path / "fake.py"
    script.write_text(FAKE_SCRIPT)
    out = tmp_path / "out"
    code, err = run_main_in_process(run_seeds, [script, "--seeds", "1,2,3", "--output_dir", out], capsys)
    assert code == 0 and "training diverged" in err
    summary = json.loads((out / "seeds_summary.json").read_text())
    assert summary == {"accuracy": {"mean": 0.2, "std": pytest.approx(0.1414, abs=1e-4), "min": 0.1, "max": 0.3,
                                    "n": 2, "values": {"1": 0.1, "3": 0.3}, "diverged": [2]}}
    table = (out / "seeds_summary.md").read_text()
    assert "| accuracy | 0.2 ± 0.1414 | 0.1 | 0.3 | 2 | 0.1 | diverged | 0.3 |" in table
    code, out_text, err = run_main_with_output(run_seeds, [script, "--seeds", "1,2,3", "--output_dir", out], capsys)
    assert code == 0 and "training diverged" not in err and "seed 2: diverged earlier" in out_text


@pytest.mark.parametrize("seeds", ["", "1,,2", "1,x", "-1", "1,1", str(2**32)])
def test_bad_seeds_are_one_error_line(tmp_path, capsys, seeds):
    code, err = run_main_in_process(run_seeds, ["run_glue_sst2.py", QUICKSTART, "--seeds", seeds,
                                                "--output_dir", tmp_path / "out"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: --seeds '{seeds}'")
    assert not (tmp_path / "out").exists()


def test_the_launcher_starts_each_seed_and_another_launcher_runs_them_again(tmp_path, capsys):
    script = tmp_path / "fake.py"
    records_argv = "open(os.path.join(args['--output_dir'], 'argv.json'), 'w').write(json.dumps(sys.orig_argv))\n"
    script.write_text(FAKE_SCRIPT + records_argv)
    argv = [script, "--seeds", "1,3", "--output_dir", tmp_path / "out"]
    code, out, err = run_main_with_output(run_seeds, [*argv, "--launcher", f"{sys.executable} -X utf8"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "out" / run_seeds.RECORD).read_text())
    assert record["1"]["ran"]["launcher"] == [sys.executable, "-X", "utf8"]
    assert json.loads((tmp_path / "out" / "seed-3" / "argv.json").read_text())[:4] == [sys.executable, "-X", "utf8",
                                                                                       str(script)]
    code, out, err = run_main_with_output(run_seeds, argv, capsys)  # this Python, without -X utf8: another command
    assert code == 0 and out.count("running into") == 2, out
