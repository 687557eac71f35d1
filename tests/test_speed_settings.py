"""The speed settings of the fast recipes change how fast a run goes, never what it computes: the length-grouped
sampler reads its lengths from Arrow but draws the same batches as the Trainer's own, worker counts are capped,
and a compiled run compiles its training step once for all batch shapes."""

import json
import os

import datasets
import pytest
import torch
from conftest import REPO_DIR, run_main_in_process
from transformers import AutoConfig, AutoModelForQuestionAnswering, Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

from common import OrderedEvalTrainer, TrainingArguments, preprocessing_processes


def test_grouped_sampler_uses_arrow_lengths_and_draws_the_trainers_batches(tmp_path):
    rows = [{"input_ids": [1] * (3 + (i * 7) % 29), "start_positions": 0, "end_positions": 0} for i in range(300)]
    dataset = datasets.Dataset.from_list(rows)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, report_to="none",
                             train_sampling_strategy="group_by_length", use_cpu=True)
    model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(REPO_DIR / "assets/tiny-bert"))
    trainer = OrderedEvalTrainer(model=model, args=args, train_dataset=dataset)

    ours = trainer._get_train_sampler(dataset)
    assert isinstance(ours, LengthGroupedSampler)
    assert ours.lengths == [len(row["input_ids"]) for row in rows]
    torch.manual_seed(3)
    our_order = list(ours)
    torch.manual_seed(3)
    assert our_order == list(Trainer._get_train_sampler(trainer, dataset))  # the row-by-row Python version


def test_preprocessing_processes_never_exceed_cores_or_rows(monkeypatch):
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    cores = os.cpu_count()
    assert preprocessing_processes(None, 1000) is None
    assert preprocessing_processes(1, 1000) is None
    assert preprocessing_processes(10_000, 1000) == (min(cores, 1000) if cores > 1 else None)
    assert preprocessing_processes(16, 1) is None
    assert os.environ.get("TOKENIZERS_PARALLELISM") == ("false" if cores > 1 else None)  # one thread per process
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    preprocessing_processes(10_000, 1000)
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"  # the user's choice stands


@pytest.mark.parametrize("script,extra", [
    ("run_glue_sst2", []),  # dynamic padding: every batch has its own length
    ("run_squad", ["--pad_to_max_length", "true", "--do_predict", "false"]),  # every window padded to one length
])
def test_compiled_run_compiles_the_training_step_once(script, extra, tmp_path, capsys, monkeypatch):
    """The epoch's last batch is smaller and, with dynamic padding, every batch has its own length: one compilation
    must serve them all (a recompilation costs as much as the first one), and the config must not change under the
    compiled model (SST-2 states its problem_type up front)."""
    import importlib

    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    module = importlib.import_module(script)
    recipe = REPO_DIR / "recipes" / ("sst2" if script == "run_glue_sst2" else "squad") / "quickstart.yaml"
    torch._dynamo.reset()
    frames = torch._dynamo.utils.counters["stats"]
    frames.clear()
    code, err = run_main_in_process(module, [recipe, "--output_dir", tmp_path / "out", "--torch_compile", "true",
                                             "--num_train_epochs", "2", *extra], capsys)
    assert code == 0, err
    assert frames["unique_graphs"] == 1, dict(frames)
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert results["train_samples"] % 32 != 0  # the last batch of each epoch was smaller: a shape change happened
    assert not marks  # Inductor without CUDA graphs: no step marks
    torch._dynamo.reset()


@pytest.mark.parametrize("script", ["run_glue_sst2", "run_squad"])
def test_cuda_graph_runs_mark_every_training_step(script, tmp_path, capsys, monkeypatch):
    """With CUDA graphs (--torch_compile_backend cudagraphs, 2.3x faster MiniLM steps on an H100, BENCHMARKS.md)
    each step's graph replay may overwrite the last step's outputs only once the step is marked as begun."""
    import importlib

    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    module = importlib.import_module(script)
    recipe = REPO_DIR / "recipes" / ("sst2" if script == "run_glue_sst2" else "squad") / "quickstart.yaml"
    torch._dynamo.reset()
    extra = ["--do_predict", "false"] if script == "run_squad" else []
    code, err = run_main_in_process(module, [recipe, "--output_dir", tmp_path / "out", "--torch_compile", "true",
                                             "--torch_compile_backend", "cudagraphs", "--pad_to_max_length", "true",
                                             *extra], capsys)
    assert code == 0, err
    steps = json.loads((tmp_path / "out" / "trainer_state.json").read_text())["global_step"]
    assert steps > 1 and len(marks) == steps
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert ("eval_f1" if script == "run_squad" else "eval_accuracy") in results  # evaluation ran after training
    torch._dynamo.reset()


@pytest.mark.parametrize("recipe", sorted(str(p.relative_to(REPO_DIR)) for p in REPO_DIR.glob("recipes/s*/*.yaml")
                                           if "quickstart" not in p.name))
def test_gpu_recipes_parse_and_switch_on_the_measured_speed_settings(recipe):
    """Every GPU recipe parses with its script (bf16/tf32 off on this CPU) and carries the settings that cost nothing:
    fused AdamW, no per-step loss sync, non-blocking copies from pinned memory, loader workers. torch.compile only
    where it was measured to pay: BERT-base on 384-token SQuAD windows (1.58x), not MiniLM at batch 32 (its ~40 s
    compilation was not won back in a 5,532-step run)."""
    import importlib

    import yaml

    from common import ModelArguments, parse_args

    script = "run_glue_sst2" if recipe.startswith("recipes/sst2") else "run_squad"
    module = importlib.import_module(script)
    _, data_args, training_args = parse_args((ModelArguments, module.DataArguments, TrainingArguments),
                                             [str(REPO_DIR / recipe), "--bf16", "false", "--tf32", "false"])
    assert training_args.optim.value == "adamw_torch_fused"
    assert training_args.logging_nan_inf_filter is False and training_args.accelerator_config.non_blocking is True
    assert training_args.dataloader_pin_memory is True and training_args.dataloader_num_workers >= 4
    settings = yaml.safe_load((REPO_DIR / recipe).read_text())
    assert settings.get("torch_compile", False) is ("bert-base" in recipe and script == "run_squad")
    assert "train_sampling_strategy" not in settings  # grouping changes the batches: measured -0.6 F1 on SQuAD
