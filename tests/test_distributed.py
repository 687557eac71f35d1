"""Two processes on CPU (torchrun, gloo): the scripts train, evaluate and predict; only the main process writes
files; distributed evaluation gives exactly the single-process answers (no window dropped or counted twice by the
sampler's padding). Each torchrun costs two Python start-ups, so the runs are few and small."""

import csv
import json
import os
import shutil

import pytest
from conftest import REPO_DIR, SAMPLE_DIR, TINY_MODEL, run_python, saved_tiny_model

import finetune.cli
import finetune.runs

# Runs a script under torchrun like `torchrun ... SCRIPT ARGS`, and records every file operation that a process other
# than rank 0 makes inside $WATCH_DIR (Python's audit hooks see open() for writing, os.open, renames, mkdir, removes;
# torch.save and safetensors' save_file are wrapped).
AUDITED = """
import os, runpy, sys
watch = os.path.realpath(os.environ["WATCH_DIR"]) + os.sep
rank = int(os.environ.get("RANK", "0"))
log = open(os.environ["WRITE_LOG"] + "." + str(rank), "w")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def hook(event, args):
    if event == "open":
        path, mode, flags = args
        if not (mode and set(mode) & set("wax+")) and not (mode is None and flags & WRITE_FLAGS):
            return
        paths = [path]
    elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate"):
        paths = list(args[:2]) if event == "os.rename" else [args[0]]
    else:
        return
    for path in paths:
        if isinstance(path, (str, bytes, os.PathLike)):
            full = os.path.realpath(os.fsdecode(path))
            if (full + os.sep).startswith(watch):
                log.write(event + " " + full[len(watch):] + "\\n")
                log.flush()

sys.addaudithook(hook)

# torch.save and safetensors write through C++/Rust, which the audit hook does not see: record them here
import torch, safetensors.torch

def recording(save, path_position):
    def save_and_record(*args, **kwargs):
        path = args[path_position] if len(args) > path_position else kwargs.get("f", kwargs.get("filename"))
        hook("open", (path, "wb", 0))
        return save(*args, **kwargs)
    return save_and_record

torch.save = recording(torch.save, 1)
safetensors.torch.save_file = recording(safetensors.torch.save_file, 1)
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def torchrun(tmp_path, script, *args, nproc=2, printed=None):
    """Runs `torchrun --standalone --nproc_per_node 2 SCRIPT ARGS`; returns {rank: [file operations in output_dir]}.
    printed: a list to which the run's stdout and stderr are added."""
    wrapper = tmp_path / "audited.py"
    wrapper.write_text(AUDITED)
    output_dir = args[list(args).index("--output_dir") + 1]
    env = {"WATCH_DIR": str(output_dir), "WRITE_LOG": str(tmp_path / "writes"), "OMP_NUM_THREADS": "1"}
    # The launcher is forked from a script server, which has imported torch, and forks its workers in turn
    # (--run_path --start_method fork): new interpreters would spend seconds each importing torch again.
    result = run_python("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", nproc, "--run_path",
                        "--start_method", "fork", wrapper, REPO_DIR / script, *args, env=env, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    if printed is not None:
        printed.append(result.stdout + result.stderr)
    return {rank: (tmp_path / f"writes.{rank}").read_text().splitlines() for rank in range(nproc)}


def rank_1_writes_beyond_its_rng_state(operations):
    """Everything rank 1 did in output_dir except what DDP resuming needs from every rank: its own RNG state in each
    checkpoint (checkpoint-N/rng_state_1.pth) and creating the folders it goes into."""
    allowed = []
    for operation in operations:
        event, path = operation.split(" ", 1)
        name = os.path.basename(path)
        if event == "os.mkdir" and (path == "" or finetune.runs.CHECKPOINT_NAME.fullmatch(name)):
            continue
        if event == "open" and name == "rng_state_1.pth" and finetune.runs.CHECKPOINT_NAME.fullmatch(os.path.dirname(path)):
            continue
        allowed.append(operation)
    return allowed


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def run_in_process(module, argv):
    finetune.cli.run_main(lambda: module.main([str(a) for a in argv]))


SST2_DATA = ["--train_file", SAMPLE_DIR / "sst2_train.tsv", "--validation_file", SAMPLE_DIR / "sst2_dev.tsv",
             "--test_file", SAMPLE_DIR / "sst2_test.tsv", "--max_eval_samples", 117, "--max_predict_samples", 37,
             "--per_device_eval_batch_size", 8, "--max_seq_length", 64, "--report_to", "none", "--disable_tqdm", "true"]
# 600 rows / (16 x 2 processes) = 19 steps an epoch: resuming from checkpoint-6 crosses an epoch boundary
SST2_TRAIN = [*TINY_MODEL, *SST2_DATA, "--do_train", "--do_eval", "--do_predict", "--max_steps", 24, "--save_steps", 6,
              "--per_device_train_batch_size", 16, "--learning_rate", 1e-3, "--seed", 5]


@pytest.fixture(scope="module")
def sst2_two_processes(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sst2-ddp")
    output_dir = tmp_path / "ddp"
    PRINTED.clear()
    writes = torchrun(tmp_path, "run_glue_sst2.py", *SST2_TRAIN, "--output_dir", output_dir, printed=PRINTED)
    return output_dir, writes


PRINTED = []  # what the sst2_two_processes run printed


def test_two_processes_print_one_summary_and_no_ddp_search_warning(sst2_two_processes):
    """The main process prints; the others only errors. DDP does not search for unused parameters (these models use
    every one), so torch does not warn that it found none."""
    [printed] = PRINTED
    assert "find_unused_parameters" not in printed, printed[-3000:]
    assert printed.count("Training: 600 examples, 2 epochs, 24 optimizer steps; effective batch 32 (16 per device x 2 "
                         "processes x 1 accumulation step)") == 1, printed[-3000:]
    assert printed.count("Speed settings for this machine") == 1


def test_glue_sst2_two_processes_train_eval_predict_and_only_rank_0_writes(sst2_two_processes, tmp_path):
    import run_glue_sst2

    output_dir, writes = sst2_two_processes
    data = SST2_DATA
    assert rank_1_writes_beyond_its_rng_state(writes[1]) == []
    assert any(op.endswith("checkpoint-6/rng_state_1.pth") for op in writes[1])  # DDP resume needs it, by design
    assert any(op.endswith("eval_results.json") for op in writes[0])
    for name in ("model.safetensors", "eval_results.json", "eval_failures.tsv", "predict_results.tsv"):
        assert (output_dir / name).exists(), name
    assert finetune.runs.is_complete_checkpoint(output_dir / "checkpoint-24")
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 24 and state["train_batch_size"] == 16
    assert state["epoch"] == pytest.approx(24 / 19, abs=1e-3)  # two processes share each epoch: a real world of 2

    # the same model evaluated by one process: the same numbers, every row once (117 and 37 split unevenly)
    single = tmp_path / "single"
    run_in_process(run_glue_sst2, ["--model_name_or_path", output_dir, *data, "--do_eval", "--do_predict",
                                   "--output_dir", single])
    distributed_results, single_results = (json.loads((d / "eval_results.json").read_text())
                                           for d in (output_dir, single))
    assert distributed_results["eval_samples"] == single_results["eval_samples"] == 117
    assert distributed_results["eval_accuracy"] == single_results["eval_accuracy"]
    # The Trainer averages per-batch mean losses; the last, uneven batch of rank 1 is padded with repeated rows whose
    # predictions gather_for_metrics drops but whose share of that batch's mean loss it cannot: a small, known drift.
    assert distributed_results["eval_loss"] == pytest.approx(single_results["eval_loss"], abs=5e-3)
    distributed_predictions, single_predictions = (read_tsv(d / "predict_results.tsv") for d in (output_dir, single))
    assert len(distributed_predictions) == 37
    assert [(p["index"], p["prediction"], p["sentence"]) for p in distributed_predictions] == \
        [(p["index"], p["prediction"], p["sentence"]) for p in single_predictions]
    for got, want in zip(distributed_predictions, single_predictions):
        assert float(got["probability"]) == pytest.approx(float(want["probability"]), abs=2e-4)
    distributed_failures, single_failures = (read_tsv(d / "eval_failures.tsv") for d in (output_dir, single))
    assert sorted(f["index"] for f in distributed_failures) == sorted(f["index"] for f in single_failures)


SQUAD_EVAL = ["--validation_file", SAMPLE_DIR / "squad_dev.json", "--test_file",
              SAMPLE_DIR / "squad_test.json", "--do_eval", "--do_predict", "--max_seq_length", 64, "--doc_stride", 16,
              "--max_query_length", 16, "--per_device_eval_batch_size", 5, "--seed", 3, "--report_to", "none",
              "--disable_tqdm", "true"]


def test_two_processes_resume_after_a_crash_to_the_same_weights(sst2_two_processes, tmp_path):
    """Each process restores its own RNG state (rng_state_<rank>.pth) and skips the batches it had seen."""
    reference, _ = sst2_two_processes
    output_dir = tmp_path / "resumed"
    output_dir.mkdir()
    shutil.copytree(reference / "checkpoint-6", output_dir / "checkpoint-6")
    shutil.copy2(reference / ".run.json", output_dir)  # the same command: the folder's record says it is this run's
    torchrun(tmp_path, "run_glue_sst2.py", *SST2_TRAIN, "--output_dir", output_dir)
    assert (output_dir / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert json.loads((output_dir / "eval_results.json").read_text())["eval_loss"] == \
        json.loads((reference / "eval_results.json").read_text())["eval_loss"]


def test_squad_two_process_evaluation_equals_single_process_predictions(tmp_path):
    """Each window's logits of one (untrained) model decide the answers, so a window dropped, duplicated or
    misordered across processes changes the predictions files."""
    import run_squad

    model = ["--model_name_or_path", saved_tiny_model(tmp_path / "model", "AutoModelForQuestionAnswering")]
    single = tmp_path / "single"
    run_in_process(run_squad, [*model, *SQUAD_EVAL, "--output_dir", single])
    distributed = tmp_path / "ddp"
    writes = torchrun(tmp_path, "run_squad.py", *model, *SQUAD_EVAL, "--output_dir", distributed)
    assert rank_1_writes_beyond_its_rng_state(writes[1]) == []

    for name in ("eval_predictions.json", "predict_predictions.json"):
        single_answers = json.loads((single / name).read_text())
        assert json.loads((distributed / name).read_text()) == single_answers, name
    dev_questions = sum(len(q["qas"]) for article in json.loads((SAMPLE_DIR / "squad_dev.json").read_text())["data"]
                        for q in article["paragraphs"])
    assert len(single_answers) > 0 and len(json.loads((single / "eval_predictions.json").read_text())) == dev_questions
    for name in ("eval_nbest_predictions.json", "predict_nbest_predictions.json"):
        single_nbest = json.loads((single / name).read_text())
        distributed_nbest = json.loads((distributed / name).read_text())
        assert distributed_nbest.keys() == single_nbest.keys()
        for qid, candidates in single_nbest.items():
            assert [c["text"] for c in distributed_nbest[qid]] == [c["text"] for c in candidates], qid
            assert [c["probability"] for c in distributed_nbest[qid]] == \
                pytest.approx([c["probability"] for c in candidates], abs=1e-5), qid
    single_results, distributed_results = (json.loads((d / "eval_results.json").read_text())
                                           for d in (single, distributed))
    for key in ("eval_exact_match", "eval_f1", "eval_samples"):
        assert distributed_results[key] == single_results[key], key
