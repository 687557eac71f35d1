"""The argument dataclasses both scripts share, and their up-front checks."""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import huggingface_hub
import torch
import transformers

from finetune.cli import InputError

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Pretrained model: a Hub id (bert-base-cased, you/your-model) or a local folder."}
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Config (Hub id or folder). Without --model_name_or_path: train from scratch."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer (Hub id or folder); defaults to --model_name_or_path."}
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


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Allow a new run in a non-empty --output_dir (files already there are kept, never deleted)."},
    )
    cpu_threads: int | None = field(
        default=None,
        metadata={"help": "Threads for torch's work on the CPU (default: torch's, one per core). 1 is faster for tiny "
                          "models and on a busy machine, where threads wait on each other (the quickstart recipes)."},
    )
    # What --load_best_model_at_end, --save_strategy best and the plateau scheduler compare when no
    # --metric_for_best_model is named: the Trainer's choice, the loss, which QA evaluation does not compute, so
    # run_squad.py names another.
    default_best_metric: ClassVar[str] = "loss"

    def __post_init__(self):
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
        if self.dataloader_num_workers == 0 and self.dataloader_persistent_workers:
            # A recipe's persistent workers mean nothing without workers (torch would refuse the DataLoader)
            self.dataloader_persistent_workers = False
        super().__post_init__()
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

    @property
    def replays_cuda_graphs(self):
        return self.torch_compile and (self.torch_compile_backend == "cudagraphs"
                                       or self.torch_compile_mode in ("reduce-overhead", "max-autotune"))

    def check(self):
        """What the Trainer would otherwise fail on with a traceback deep in a run, or silently do nothing with."""
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name} must be at least 1 (got {getattr(self, name)})")
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


def launched_processes():
    """How many processes torchrun / accelerate launch / mpirun started for this run (1 without a launcher)."""
    for name in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1
