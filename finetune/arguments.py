"""The argument dataclasses both scripts share, their up-front checks, and the speed settings that depend on the
machine: a recipe states what it reproduces; how fast this machine can run it is decided here."""

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import huggingface_hub
import torch
import transformers
from transformers.trainer_utils import HubStrategy
from transformers.utils import is_torch_tf32_available

from finetune.errors import InputError

logger = logging.getLogger(__name__)
FOR_THIS_MACHINE = "default: chosen for this machine"
SEEDS = 2**32  # numpy's and torch's seeds: 0 <= seed < 2**32
# The ranges the optimizer, the gradient clipping and the label smoother need; torch refuses some values once the
# data is tokenized, and takes others silently: a negative --max_grad_norm flips every gradient.
RANGES = {"weight_decay": (0, None), "max_grad_norm": (0, None), "adam_epsilon": (0, None),
          "adam_beta1": (0, 1), "adam_beta2": (0, 1), "label_smoothing_factor": (0, 1),
          "logging_steps": (0, None), "save_steps": (0, None), "eval_steps": (0, None)}


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Pretrained model: a Hub id (bert-base-cased, you/your-model) or a local folder."}
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Config (Hub id or folder). Without --model_name_or_path: train from scratch."}
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={"help": "Tokenizer (Hub id or folder); defaults to --model_name_or_path, else to --config_name."},
    )
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the Hub model."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloads from the Hub are stored."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run code shipped with a Hub model. Off unless you trust the repository."}
    )

    def __post_init__(self):
        # An empty value on the command line unsets a recipe's: `--model_name_or_path ""` with --config_name trains
        # a recipe from scratch.
        for name in ("model_name_or_path", "config_name", "tokenizer_name", "cache_dir"):
            if getattr(self, name) == "":
                setattr(self, name, None)
        if self.model_name_or_path is None and self.tokenizer_name is None:
            self.tokenizer_name = self.config_name  # from scratch: the config's folder or Hub repo has a tokenizer too


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start a new run in a non-empty --output_dir: your files are kept; the earlier run's "
                          "checkpoints are not resumed, and --save_total_limit may rotate them away."},
    )
    # --push_to_hub uploads the finished output folder once, with its model card (finetune/hub.py), not the Trainer's
    # "Training in progress" commit of the whole folder at every save; pushes during training are asked for by name.
    hub_strategy: HubStrategy | str = field(
        default="end",
        metadata={"help": "When --push_to_hub uploads: 'end', once the run's folder is complete; 'every_save' also at "
                          "every save; 'checkpoint' also pushes the last checkpoint (resumable from the Hub); "
                          "'all_checkpoints' every checkpoint."},
    )
    # The Trainer searches for unused parameters after every backward under DDP unless told not to: a traversal of the
    # autograd graph each step, and a warning from torch on every run. The BERT classifiers and QA heads use every
    # parameter in every forward pass.
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={"help": "Under DDP (several processes), search each step for parameters the forward pass did not "
                          "use. Off: the models of these recipes use them all; turn it on for a model that skips some."},
    )
    cpu_threads: int | None = field(
        default=None,
        metadata={"help": "Threads for torch's work on the CPU (default: torch's, one per core). 1 is faster for tiny "
                          "models and on a busy machine, where threads wait on each other (the quickstart recipes)."},
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop training once --metric_for_best_model has not improved for this many evaluations in a "
                          "row, and keep the best evaluation's model (needs --eval_strategy epoch or steps; checkpoints "
                          "are then saved at each evaluation)."})
    early_stopping_threshold: float | None = field(
        default=None,
        metadata={"help": "With --early_stopping_patience: an evaluation improves only by more than this (default 0)."})
    # The speed settings that depend on the hardware: None until resolve_speed_settings() picks for this machine;
    # a recipe key or a command-line flag sets them instead.
    bf16: bool | None = field(default=None, metadata={"help": f"bf16 mixed precision ({FOR_THIS_MACHINE})."})
    torch_compile: bool | None = field(default=None, metadata={"help": f"torch.compile the model ({FOR_THIS_MACHINE})."})
    dataloader_num_workers: int | None = field(
        default=None, metadata={"help": f"DataLoader worker processes ({FOR_THIS_MACHINE})."})
    dataloader_pin_memory: bool | None = field(
        default=None, metadata={"help": f"Page-locked batches for faster copies to the GPU ({FOR_THIS_MACHINE})."})
    dataloader_persistent_workers: bool | None = field(
        default=None, metadata={"help": f"Keep the loader workers between epochs ({FOR_THIS_MACHINE})."})
    logging_nan_inf_filter: bool | None = field(
        default=None, metadata={"help": f"Skip non-finite losses in the logged average ({FOR_THIS_MACHINE})."})
    # What --load_best_model_at_end, --save_strategy best and the plateau scheduler compare when no
    # --metric_for_best_model is named: the Trainer's choice, the loss, which QA evaluation does not compute, so
    # run_squad.py names another.
    default_best_metric: ClassVar[str] = "loss"

    def __post_init__(self):
        self.set_up_early_stopping()
        # (the Trainer's strategy enums are str subclasses: SaveStrategy.BEST == "best")
        compares_evaluations = (self.load_best_model_at_end or self.save_strategy == "best"
                                or self.lr_scheduler_type == "reduce_lr_on_plateau")
        if compares_evaluations and self.metric_for_best_model is None:
            self.metric_for_best_model = self.default_best_metric
        if launched_processes() > 1 and not self.use_cpu and not torch.accelerator.is_available():
            # torchrun / accelerate launch on a machine without a GPU: without use_cpu, accelerate would give every
            # process a world of its own (N separate trainings, all writing the same files); with it, they join
            # one gloo process group.
            self.use_cpu = True
        self.resolve_speed_settings()
        evaluation_asked = self.do_eval
        super().__post_init__()
        if not self.do_train and not evaluation_asked:  # the Trainer turns --do_eval on for any --eval_strategy,
            self.do_eval = False  # which evaluates during a training: without one, nothing was asked
        if self.lr_scheduler_type == "reduce_lr_on_plateau" and self.greater_is_better:
            # torch's ReduceLROnPlateau waits for its metric to fall; for accuracy or F1 it must wait for a rise
            # (the Trainer passes no mode: it would lower the rate while the metric improves)
            self.lr_scheduler_kwargs = {"mode": "max", **(self.lr_scheduler_kwargs or {})}
        self.check()
        if self.cpu_threads:
            torch.set_num_threads(self.cpu_threads)
        if launched_processes() > 1 and self.world_size != launched_processes():
            raise InputError(f"{launched_processes()} processes were launched but they did not join one process group "
                             f"(world size {self.world_size}); check --ddp_backend and the launcher's settings")

    def set_up_early_stopping(self):
        """--early_stopping_patience compares the evaluations made during training and keeps the best one's model, so
        that stopping late costs nothing: a checkpoint at each evaluation, the best loaded at the end, and the patience
        count restored with a checkpoint (the Trainer restores callback states only when told to)."""
        if self.early_stopping_patience is None:
            if self.early_stopping_threshold is not None:
                raise InputError("--early_stopping_threshold applies to --early_stopping_patience, which is not set; "
                                 "give both, or neither")
            return
        if self.early_stopping_patience < 1:
            raise InputError(f"--early_stopping_patience must be at least 1 (got {self.early_stopping_patience})")
        if self.early_stopping_threshold is not None and self.early_stopping_threshold < 0:
            raise InputError(f"--early_stopping_threshold must be 0 or more (got {self.early_stopping_threshold:g})")
        if not self.do_train:
            return
        if self.eval_strategy == "no":
            raise InputError("--early_stopping_patience stops when the evaluations during training stop improving, and "
                             "--eval_strategy no makes none: set --eval_strategy epoch or steps (and a validation set)")
        if self.save_strategy == "no":  # save where it evaluates: the best evaluation's model must be on disk
            self.save_strategy, self.save_steps = self.eval_strategy, self.eval_steps or self.logging_steps
        elif self.save_strategy not in (self.eval_strategy, "best"):
            raise InputError(f"--early_stopping_patience keeps the best evaluation's model, which needs a checkpoint "
                             f"at each evaluation: --save_strategy {self.save_strategy} does not match "
                             f"--eval_strategy {self.eval_strategy}; give them the same value, or --save_strategy best")
        self.load_best_model_at_end = True
        self.restore_callback_states_from_checkpoint = True  # a resumed run keeps its patience count

    def resolve_speed_settings(self):
        """Sets each speed setting that neither the recipe nor the command line set (see speed_settings)."""
        requested = {name: getattr(self, name) for name in SPEED_SETTINGS}
        requested["fsdp"] = bool(self.fsdp) or os.environ.get("ACCELERATE_USE_FSDP") == "true"
        machine = this_machine(self.use_cpu)
        for name, value in speed_settings(requested, machine).items():
            setattr(self, name, value)
        self.precision_reason = precision_reason(requested, self.bf16, machine)  # printed by speed_summary()
        if self.bf16 and not machine.gpu and not torch.accelerator.is_available():
            # The Trainer's own check looks for a GPU and refuses bf16 on a CPU unless use_cpu is set; on a machine
            # without an accelerator use_cpu changes nothing else.
            self.use_cpu = True
        if self.bf16 and not machine.gpu and not machine.cpu_bf16:
            logger.warning("--bf16 on a CPU without native bf16 (AMX or AVX512-BF16): torch emulates it, and the run "
                           "is slower than in fp32; leave --bf16 out to let the machine choose")

    @property
    def replays_cuda_graphs(self):
        return self.torch_compile and (self.torch_compile_backend == "cudagraphs"
                                       or self.torch_compile_mode in ("reduce-overhead", "max-autotune"))

    def speed_summary(self):
        """One line: what resolve_speed_settings() and the recipe chose, to be printed at the start of a run."""
        device = torch.cuda.get_device_name() if torch.cuda.is_available() and not self.use_cpu else "CPU"
        precision = "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32" + (" with tf32 matmuls" if self.tf32 else "")
        reason = getattr(self, "precision_reason", None)
        precision += f" ({reason})" if reason else ""
        compiled = (f"torch.compile {self.torch_compile_backend}" + (f" {self.torch_compile_mode}"
                    if self.torch_compile_mode else "")) if self.torch_compile else "no torch.compile"
        pinned = ", pinned memory" if self.dataloader_pin_memory else ""
        return (f"Speed settings for this machine ({device}): {precision}, {compiled}, optimizer "
                f"{getattr(self.optim, 'value', self.optim)}, {self.dataloader_num_workers} loader workers{pinned}")

    def check(self):
        """What the Trainer would otherwise fail on with a traceback deep in a run, or silently do nothing with."""
        if not str(self.output_dir).strip():  # "" would write the run into the current folder
            raise InputError("--output_dir is empty; give the folder to write the model and results into")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                     "eval_accumulation_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"--{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("seed", "data_seed"):
            if getattr(self, name) is not None and not 0 <= getattr(self, name) < SEEDS:
                raise InputError(f"--{name} must be between 0 and {SEEDS - 1} (got {getattr(self, name)})")
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if value is not None and (value < low or high is not None and value >= high):
                allowed = f"at least {low}" if high is None else f"at least {low} and below {high}"
                raise InputError(f"--{name} must be {allowed} (got {value:g})")
        if self.do_train and self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise InputError(f"--num_train_epochs {self.num_train_epochs:g} trains nothing; give a positive "
                             "--num_train_epochs or --max_steps")
        if self.save_strategy == "best" and self.eval_strategy == "no" and self.do_train:
            raise InputError("--save_strategy best saves when an evaluation improves, and --eval_strategy no makes "
                             "none: nothing would be saved; set --eval_strategy steps or epoch")
        if self.learning_rate < 0:  # the optimizer would refuse it once the data is tokenized
            raise InputError(f"--learning_rate must not be negative (got {self.learning_rate:g})")
        if self.dataloader_num_workers < 0:
            raise InputError(f"--dataloader_num_workers must be 0 or more (got {self.dataloader_num_workers})")
        if self.push_to_hub and huggingface_hub.constants.HF_HUB_OFFLINE:  # else found when the Trainer is built
            raise InputError("--push_to_hub: HF_HUB_OFFLINE=1 is set, so nothing can be pushed; unset it, or drop "
                             "--push_to_hub and push later with push_to_hub.py")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise InputError(f"--cpu_threads must be at least 1 (got {self.cpu_threads})")
        installed = transformers.integrations.get_available_reporting_integrations()
        missing = [name for name in self.report_to if name not in ("all", "none") and name not in installed]
        if missing:  # the Trainer would stop with a traceback once the data is tokenized
            raise InputError(f"--report_to {' '.join(missing)}: not installed here; pip install {' '.join(missing)} "
                             "or pass --report_to none")
        existing = Path(self.output_dir).absolute()  # the output folder or the nearest folder above it that exists
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            above = f": {existing}" if existing != Path(self.output_dir).absolute() else ""
            raise InputError(f"--output_dir {self.output_dir}{above} is a file, not a folder; choose another "
                             "--output_dir")
        if not os.access(existing, os.W_OK | os.X_OK):  # a read-only disk, or another user's folder
            raise InputError(f"--output_dir {self.output_dir}: {existing} is not writable here (read-only or no "
                             "permission); choose another --output_dir")
        self.check_results_file()

    def check_results_file(self):
        """The run merges its metrics into the all_results.json already in --output_dir, at its very end: one that
        cannot be read back would stop the run there, after the training."""
        path = Path(self.output_dir) / "all_results.json"
        if not path.exists() and not path.is_symlink():
            return
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
            problem = None if isinstance(results, dict) else f"holds a JSON {type(results).__name__}, not an object"
        except (OSError, ValueError) as error:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
            problem = f"cannot be read back ({' '.join(str(error).split())})"
        if problem:
            raise InputError(f"{path} {problem}; this run merges its results into it: fix or move that file, or "
                             "choose another --output_dir")

    def check_best_metric(self, evaluation_metrics):
        """--metric_for_best_model must be one of the evaluation's metrics: the Trainer finds out at the first
        evaluation during training, after training up to it."""
        best = (self.metric_for_best_model or "").removeprefix("eval_")
        if best and best not in evaluation_metrics and self.do_train and self.eval_strategy != "no":
            raise InputError(f"--metric_for_best_model {best} is not a metric of this run's evaluation; choose one "
                             f"of {', '.join(evaluation_metrics)}")

    def __getstate__(self):
        # The Trainer pickles these arguments into training_args.bin, which is pushed to the Hub: keep the token out.
        state = dict(self.__dict__)
        state["hub_token"] = None
        return state


SPEED_SETTINGS = ("bf16", "fp16", "tf32", "torch_compile", "torch_compile_backend", "torch_compile_mode",
                  "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers",
                  "logging_nan_inf_filter", "accelerator_config")


@dataclass(frozen=True)
class Machine:
    gpu: bool  # a CUDA GPU this run uses
    bf16: bool  # ... that computes in bf16 (Ampere or newer)
    tf32: bool  # ... that has tf32 matmuls (Ampere or newer)
    cpu_count: int
    local_processes: int  # processes of this run on this machine (torchrun / accelerate launch)
    cpu_bf16: str = ""  # the CPU's instructions that compute bf16 natively ("AMX", "AVX512-BF16"), "" for none


def this_machine(use_cpu=False):
    gpu = torch.cuda.is_available() and not use_cpu
    return Machine(gpu=gpu, bf16=gpu and torch.cuda.is_bf16_supported(including_emulation=False),
                   tf32=gpu and is_torch_tf32_available(), cpu_count=os.cpu_count() or 1,
                   local_processes=int(os.environ.get("LOCAL_WORLD_SIZE", "1")), cpu_bf16=native_cpu_bf16())


def native_cpu_bf16():
    """The instructions of this CPU that compute bf16 natively, as torch's oneDNN kernels use them: AMX tiles (Xeon
    Sapphire Rapids and newer) or AVX512-BF16 (Xeon Cooper Lake, AMD Zen 4 and newer); "" for none, where torch
    emulates bf16 by converting to fp32 and back, slower than fp32 itself."""
    cpu = torch.cpu
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "AMX"
    if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "AVX512-BF16"
    return ""


def speed_settings(requested, machine):
    """The fastest safe value of each speed setting left unset (None) in `requested`, for `machine`; the values set
    stay. On a CPU: bf16 autocast where the CPU computes bf16 natively (fp32 elsewhere), eager, batches built in the
    training process. On a CUDA GPU: bf16 and tf32 where it has them, torch.compile (the recipe may name its
    backend: a CPU ignores it), loader workers copying from pinned memory without waiting, and no per-step read of
    the loss (the NaN filter syncs the GPU every step). The fused AdamW is the Trainer's default on both."""
    chosen = {name: requested[name] for name in SPEED_SETTINGS}
    gpu = machine.gpu
    if chosen["bf16"] is None:
        chosen["bf16"] = (machine.bf16 if gpu else bool(machine.cpu_bf16)) and not chosen["fp16"]
    if chosen["tf32"] is None and machine.tf32:
        chosen["tf32"] = True
    if chosen["torch_compile"] is None:  # not measured with FSDP's sharded parameters: left to an explicit flag
        chosen["torch_compile"] = gpu and not requested["fsdp"]
    if not chosen["torch_compile"]:
        # The Trainer would take a backend or mode as "compile" and switch compilation back on.
        chosen["torch_compile_backend"] = chosen["torch_compile_mode"] = None
    if chosen["dataloader_num_workers"] is None:
        chosen["dataloader_num_workers"] = min(4, machine.cpu_count // machine.local_processes) if gpu else 0
    if chosen["dataloader_pin_memory"] is None:
        chosen["dataloader_pin_memory"] = gpu
    if chosen["dataloader_persistent_workers"] is None or chosen["dataloader_num_workers"] == 0:
        # (torch refuses persistent workers without workers)
        chosen["dataloader_persistent_workers"] = chosen["dataloader_num_workers"] > 0
    if chosen["logging_nan_inf_filter"] is None:
        chosen["logging_nan_inf_filter"] = not gpu
    if chosen["accelerator_config"] is None and gpu:
        chosen["accelerator_config"] = {"non_blocking": True}
    return chosen


def precision_reason(requested, bf16, machine):
    """Why the run computes in the precision speed_settings() chose, in a few words for the speed summary."""
    if requested["bf16"] is not None or requested["fp16"]:
        if bf16 and not machine.gpu and not machine.cpu_bf16:
            return "asked for; this CPU has no native bf16, so it is emulated and slower than fp32"
        return "asked for"
    where = "the GPU" if machine.gpu else "this CPU"
    if bf16:
        return f"{where} computes bf16 natively" + ("" if machine.gpu else f": {machine.cpu_bf16}")
    return f"{where} has no native bf16: " + ("older than Ampere" if machine.gpu else "no AMX or AVX512-BF16")


def launched_processes():
    """How many processes torchrun / accelerate launch / mpirun started for this run (1 without a launcher)."""
    for name in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1
