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

from finetune.arguments import SPEED_SETTINGS, Machine, TrainingArguments, native_cpu_bf16, speed_settings
from finetune.data import preprocessing_processes
from finetune.trainer import OrderedEvalTrainer


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


@pytest.mark.parametrize("dynamic_lengths", [True, False])
def test_cuda_graphs_with_dynamic_padding_warn_to_pad_to_max_length(dynamic_lengths, tmp_path, caplog,
                                                                    dynamo_config_restored):
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, torch_compile=True,
                             torch_compile_backend="cudagraphs")
    model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(REPO_DIR / "assets/tiny-bert"))
    with caplog.at_level("WARNING", logger="finetune.trainer"):
        OrderedEvalTrainer(model=model, args=args, dynamic_lengths=dynamic_lengths)
    assert ("pass --pad_to_max_length true" in caplog.text) is dynamic_lengths
    assert torch._dynamo.config.automatic_dynamic_shapes is False  # one graph per shape, never a symbolic size


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="worker processes need two cores")
def test_map_in_processes_sends_workers_file_backed_shards_and_keeps_the_results_in_memory(monkeypatch):
    """datasets pickles each worker's shard; a shard of an in-memory table pickled the whole table (SQuAD train: 79 MB
    for each of 16 workers). The workers must get shards that pickle small, and the results must be those of one
    process, in memory (no stale cache files to load on a later run)."""
    import pickle

    from finetune.data import map_in_processes

    rows = [{"text": f"{i} " + "context words " * (i % 200), "label": i % 2} for i in range(400)]
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])})
    dataset = datasets.Dataset.from_list(rows, features=features).shuffle(seed=0)  # rows in another order
    table_bytes = dataset.data.nbytes

    def count_words(batch):
        return {"words": [len(text.split()) for text in batch["text"]]}

    mapped_inputs = []
    original_map = datasets.Dataset.map

    def recording_map(self, *args, **kwargs):
        mapped_inputs.append(self)
        return original_map(self, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "map", recording_map)
    result = map_in_processes(dataset, count_words, 2, remove_columns=["text"])
    assert result.cache_files == [] and result.features["label"] == features["label"]
    assert result.to_list() == original_map(dataset, count_words, batched=True, remove_columns=["text"]).to_list()
    shard = mapped_inputs[0].shard(2, 1, contiguous=True)  # what datasets sends the second worker
    assert len(pickle.dumps(shard)) < table_bytes / 20

    mapped_inputs.clear()
    map_in_processes(dataset, count_words, 1, remove_columns=["text"])  # one process: the dataset as it is
    assert mapped_inputs == [dataset]


@pytest.mark.parametrize("script,extra", [
    ("run_glue_sst2", []),  # dynamic padding: every batch has its own length
    ("run_squad", ["--pad_to_max_length", "true"]),  # every window padded to one length
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
    # Two epochs of 40 questions or sentences (53 SQuAD windows): a full batch, a short one, a full one again, with
    # other lengths each time under dynamic padding. Compiling costs the same for any number of steps.
    # aot_eager: TorchDynamo captures and guards the graphs as Inductor's runs would (recompiling is decided there),
    # without generating and compiling C++ code, which costs tens of seconds on a cold cache.
    code, err = run_main_in_process(module, [recipe, "--output_dir", tmp_path / "out", "--torch_compile", "true",
                                             "--torch_compile_backend", "aot_eager", "--num_train_epochs", "2", "--max_train_samples", "40",
                                             "--max_eval_samples", "8", "--do_predict", "false", *extra], capsys)
    assert code == 0, err
    assert frames["unique_graphs"] == 1, dict(frames)
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert results["train_samples"] % 32 != 0  # the last batch of each epoch was smaller: a shape change happened
    assert not marks  # no CUDA graphs: no step marks
    torch._dynamo.reset()


@pytest.fixture
def dynamo_config_restored():
    """A run with the cudagraphs backend switches off torch.compile's automatic dynamic shapes for the process."""
    with torch._dynamo.config.patch(automatic_dynamic_shapes=True):
        yield


class FakeCudaGraphs:
    """Stands in for torch.compile's "cudagraphs" backend on a CPU, with the two properties a run must live with on a
    GPU: a graph is recorded for fixed sizes (a graph compiled with a symbolic size failed on an H100 at the
    epoch's short last batch), and a replay writes its outputs into the memory of the previous replay's outputs,
    once the step is marked as begun."""

    def __init__(self):
        self.graphs = self.dynamic_graphs = self.unmarked_replays = self.training_replays = 0
        self.marked = False

    def mark_step_begin(self):
        self.marked = True

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        self.dynamic_graphs += any(isinstance(x, torch.SymInt) or (
            isinstance(x, torch.Tensor) and any(isinstance(size, torch.SymInt) for size in x.shape))
            for x in example_inputs)
        output_memory = {}

        def replay(*args):
            self.unmarked_replays += not self.marked
            self.marked = False
            outputs = graph_module(*args)
            if torch.is_grad_enabled():  # training: autograd needs the real outputs; the mark is what is checked
                self.training_replays += 1
                return outputs
            for i, output in enumerate(outputs):
                if isinstance(output, torch.Tensor):
                    output_memory.setdefault(i, torch.empty_like(output)).copy_(output)
            return type(outputs)(output_memory.get(i, output) for i, output in enumerate(outputs))

        return replay


@pytest.mark.parametrize("script", ["run_glue_sst2", "run_squad"])
def test_cuda_graph_runs_record_fixed_shapes_and_keep_every_evaluation_batch(script, tmp_path, capsys, monkeypatch,
                                                                           dynamo_config_restored):
    """With CUDA graphs (--torch_compile_backend cudagraphs: SQuAD end to end 2.9x faster than run_qa.py on an
    H100, BENCHMARKS.md) every graph has fixed sizes and every replay follows a step mark. The Trainer evaluates
    the uncompiled model after training, but compiles it for an evaluation-only run: that run must give the same
    metrics although it keeps each batch's logits until the end."""
    import importlib

    from torch._dynamo.backends.registry import _COMPILER_FNS, lookup_backend

    fake = FakeCudaGraphs()
    lookup_backend("cudagraphs")  # registers the real backends first
    monkeypatch.setitem(_COMPILER_FNS, "cudagraphs", fake)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", fake.mark_step_begin)
    module = importlib.import_module(script)
    recipe = REPO_DIR / "recipes" / ("sst2" if script == "run_glue_sst2" else "squad") / "quickstart.yaml"
    args = [recipe, "--pad_to_max_length", "true", "--per_device_eval_batch_size", "5", "--do_predict", "false",
            "--torch_compile", "true", "--torch_compile_backend", "cudagraphs",
            "--num_train_epochs", "2", "--max_train_samples", "40"]  # a full batch, a short one, a full one again
    torch._dynamo.reset()
    code, err = run_main_in_process(module, [*args, "--output_dir", tmp_path / "train"], capsys)
    assert code == 0, err
    steps = json.loads((tmp_path / "train" / "trainer_state.json").read_text())["global_step"]
    trained = json.loads((tmp_path / "train" / "all_results.json").read_text())
    assert trained["train_samples"] % 32 != 0  # the epoch's last batch was smaller than the others
    assert fake.graphs == 2 and fake.dynamic_graphs == 0  # one graph for each batch size
    assert fake.training_replays == steps and fake.unmarked_replays == 0

    torch._dynamo.reset()
    code, err = run_main_in_process(module, [*args, "--model_name_or_path", tmp_path / "train", "--do_train", "false",
                                             "--output_dir", tmp_path / "evaluate"], capsys)
    torch._dynamo.reset()
    assert code == 0, err
    assert fake.graphs >= 3 and fake.dynamic_graphs == 0 and fake.unmarked_replays == 0  # evaluation compiled
    evaluated = json.loads((tmp_path / "evaluate" / "all_results.json").read_text())
    for name in ("eval_f1", "eval_exact_match", "eval_accuracy", "eval_loss"):
        if name in trained:
            assert evaluated[name] == pytest.approx(trained[name], rel=1e-5), name
    if script == "run_squad":
        predictions = [json.loads((tmp_path / run / "eval_predictions.json").read_text())
                       for run in ("train", "evaluate")]
        assert predictions[0] == predictions[1]


TASK_RECIPES = sorted(str(p.relative_to(REPO_DIR)) for p in REPO_DIR.glob("recipes/s*/*.yaml") if "quickstart" not in p.name)
CPU = Machine(gpu=False, bf16=False, tf32=False, cpu_count=2, local_processes=1)
BF16_CPU = Machine(gpu=False, bf16=False, tf32=False, cpu_count=2, local_processes=1, cpu_bf16="AVX512-BF16")
H100 = Machine(gpu=True, bf16=True, tf32=True, cpu_count=16, local_processes=1)
V100 = Machine(gpu=True, bf16=False, tf32=False, cpu_count=8, local_processes=1)


def parse_recipe(recipe, *flags):
    import importlib

    from finetune.arguments import ModelArguments
    from finetune.cli import parse_args

    module = importlib.import_module("run_glue_sst2" if recipe.startswith("recipes/sst2") else "run_squad")
    return parse_args((ModelArguments, module.DataArguments, TrainingArguments), [str(REPO_DIR / recipe), *flags])


def requested_by(recipe, **flags):
    """The speed settings a recipe and command-line flags ask for, None where they leave the choice open."""
    import yaml

    values = {**yaml.safe_load((REPO_DIR / recipe).read_text()), **flags}
    return {**{name: values.get(name) for name in SPEED_SETTINGS}, "fp16": values.get("fp16", False),
            "fsdp": False}


@pytest.mark.parametrize("recipe", TASK_RECIPES)
def test_task_recipes_state_no_hardware_setting_and_run_as_they_are_on_this_cpu(recipe):
    """A recipe states task, model, data and hyper-parameters; parsed as it is on this CPU, nothing is compiled,
    bf16 only where this CPU computes it natively, no loader workers, and every hyper-parameter is the recipe's."""
    import yaml

    settings = yaml.safe_load((REPO_DIR / recipe).read_text())
    assert not {"bf16", "tf32", "torch_compile", "dataloader_num_workers", "dataloader_pin_memory",
                "accelerator_config", "logging_nan_inf_filter", "pad_to_max_length"} & set(settings)
    _, data_args, args = parse_recipe(recipe)
    native = bool(native_cpu_bf16())
    assert args.bf16 is native and not args.torch_compile and args.torch_compile_backend is None
    assert args.dataloader_num_workers == 0 and not args.dataloader_pin_memory
    assert args.optim.value == "adamw_torch_fused"  # the Trainer's default, on both kinds of machine
    assert args.speed_summary().startswith(f"Speed settings for this machine (CPU): {'bf16' if native else 'fp32'} (")
    for name in ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "seed", "max_seq_length"):
        assert getattr(args, name, getattr(data_args, name, None)) == pytest.approx(settings[name]), name
    assert "train_sampling_strategy" not in settings  # grouping changes the batches: measured -0.6 F1 on SQuAD


@pytest.mark.parametrize("recipe", TASK_RECIPES)
def test_a_gpu_gets_the_fast_settings_and_the_same_hyper_parameters(recipe):
    """What the same recipe resolves to on an H100 and on a GPU without bf16; only speed settings are chosen."""
    on_h100 = speed_settings(requested_by(recipe), H100)
    assert set(on_h100) == set(SPEED_SETTINGS)  # nothing else: the hyper-parameters are the recipe's everywhere
    assert on_h100["bf16"] and on_h100["tf32"] and on_h100["torch_compile"]
    assert on_h100["dataloader_num_workers"] == 4 and on_h100["dataloader_pin_memory"]
    assert on_h100["dataloader_persistent_workers"] and not on_h100["logging_nan_inf_filter"]
    assert on_h100["accelerator_config"] == {"non_blocking": True}
    # MiniLM: CUDA graphs, as measured; BERT-base: Inductor, the Trainer's default backend
    assert on_h100["torch_compile_backend"] == ("cudagraphs" if "minilm" in recipe else None)
    on_v100 = speed_settings(requested_by(recipe), V100)
    assert not on_v100["bf16"] and on_v100["tf32"] is None and on_v100["torch_compile"]
    on_cpu = speed_settings(requested_by(recipe), CPU)
    assert not on_cpu["bf16"] and not on_cpu["torch_compile"] and on_cpu["torch_compile_backend"] is None
    on_bf16_cpu = speed_settings(requested_by(recipe), BF16_CPU)  # AMX or AVX512-BF16: bf16, the rest as on a CPU
    assert on_bf16_cpu == {**on_cpu, "bf16": True}


def test_flags_win_over_the_machine_and_the_recipe():
    recipe = "recipes/squad/minilm-l6.yaml"
    chosen = speed_settings(requested_by(recipe, torch_compile=False, bf16=False, dataloader_num_workers=0), H100)
    assert not chosen["torch_compile"] and chosen["torch_compile_backend"] is None  # the recipe's backend dropped
    assert not chosen["bf16"] and chosen["dataloader_num_workers"] == 0 and not chosen["dataloader_persistent_workers"]
    assert speed_settings(requested_by(recipe, fp16=True), V100)["fp16"] and not speed_settings(
        requested_by(recipe, fp16=True), H100)["bf16"]  # fp16 asked: no bf16 on top
    assert speed_settings({**requested_by(recipe), "fsdp": True}, H100)["torch_compile"] is False
    assert not speed_settings(requested_by(recipe, bf16=False), BF16_CPU)["bf16"]
    assert not speed_settings(requested_by(recipe, fp16=True), BF16_CPU)["bf16"]
    assert speed_settings(requested_by(recipe, bf16=True), CPU)["bf16"]  # emulated, slower, but what was asked
    eight_processes = Machine(gpu=True, bf16=True, tf32=True, cpu_count=16, local_processes=8)
    assert speed_settings(requested_by(recipe), eight_processes)["dataloader_num_workers"] == 2  # the cores shared


@pytest.mark.parametrize("recipe", ["recipes/sst2/minilm-l6.yaml", "recipes/squad/minilm-l6.yaml"])
def test_minilm_recipes_train_a_few_steps_on_this_cpu_without_compiling(recipe, tmp_path, capsys, monkeypatch):
    """The GPU recipes as they are, and with --torch_compile false (the recipe names a backend: it must not switch
    compilation back on), train here without torch.compile: the model and data are swapped for the tiny ones."""
    import importlib

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda *args, **kwargs: compiled.append(1) or args[0])
    torch._dynamo.reset()
    frames = torch._dynamo.utils.counters["stats"]
    frames.clear()
    sst2 = recipe.startswith("recipes/sst2")
    module = importlib.import_module("run_glue_sst2" if sst2 else "run_squad")
    data = (["--train_file", REPO_DIR / "data/sample/sst2_train.tsv", "--validation_file",
             REPO_DIR / "data/sample/sst2_dev.tsv"] if sst2 else
            ["--train_file", REPO_DIR / "data/sample/squad_train.json", "--validation_file",
             REPO_DIR / "data/sample/squad_dev.json", "--max_seq_length", 64, "--doc_stride", 16,
             "--max_query_length", 16])
    for extra in ([], ["--torch_compile", "false"]):
        out = tmp_path / f"out{len(extra)}"
        code, err = run_main_in_process(module, [REPO_DIR / recipe, "--model_name_or_path", "", "--config_name",
                                                 REPO_DIR / "assets/tiny-bert", "--tokenizer_name",
                                                 REPO_DIR / "assets/tiny-bert", *data, "--max_steps", 2,
                                                 "--max_eval_samples", 8, "--output_dir", out, *extra], capsys)
        assert code == 0, err
        assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert not compiled and not frames["unique_graphs"]


@pytest.mark.parametrize("script, recipe", [("run_glue_sst2", "recipes/sst2/quickstart.yaml"),
                                            ("run_squad", "recipes/squad/quickstart.yaml")])
def test_quickstart_recipes_run_torch_on_one_thread(tmp_path, script, recipe):
    """The quickstart's 2-layer x 64 model trains faster on one thread than on two (1.5 s against 5-45 s of
    training on the 2-core machine while another job ran, BENCHMARKS.md): --cpu_threads sets torch's thread count."""
    import importlib

    from finetune.arguments import ModelArguments
    from finetune.cli import parse_args

    module = importlib.import_module(script)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        parse_args((ModelArguments, module.DataArguments, TrainingArguments),
                   [str(REPO_DIR / recipe), "--output_dir", str(tmp_path)])
        assert torch.get_num_threads() == 1
        parse_args((ModelArguments, module.DataArguments, TrainingArguments),
                   [str(REPO_DIR / recipe), "--output_dir", str(tmp_path), "--cpu_threads", "2"])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("native, flags, bf16, reason", [
    ("AVX512-BF16", [], True, "bf16 (this CPU computes bf16 natively: AVX512-BF16)"),
    ("AMX", ["--bf16", "false"], False, "fp32 (asked for)"),
    ("", [], False, "fp32 (this CPU has no native bf16: no AMX or AVX512-BF16)"),
    ("", ["--bf16", "true"], True, "bf16 (asked for; this CPU has no native bf16, so it is emulated and slower"),
])
def test_a_cpu_chooses_bf16_where_it_computes_it_and_says_why(native, flags, bf16, reason, tmp_path, monkeypatch,
                                                              caplog):
    """What the parsed arguments and the speed summary say on CPUs with and without native bf16 (the machine is
    stood in for: the test must not depend on this one). The Trainer's own check refuses bf16 on a CPU unless
    use_cpu is set: the arguments set it, so that both the chosen and the asked-for bf16 are accepted."""
    import finetune.arguments

    monkeypatch.setattr(finetune.arguments, "native_cpu_bf16", lambda: native)
    with caplog.at_level("WARNING", logger="finetune.arguments"):
        _, _, args = parse_recipe("recipes/squad/minilm-l6.yaml", "--use_cpu", "true", "--output_dir",
                                  str(tmp_path), *flags)
    assert args.bf16 is bf16 and args.use_cpu
    assert args.speed_summary().startswith(f"Speed settings for this machine (CPU): {reason}")
    assert ("emulates it" in caplog.text) is (bf16 and not native)
