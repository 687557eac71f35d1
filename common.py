"""What run_glue_sst2.py and run_squad.py share: recipe + override parsing, reading data files with row-precise
errors, loading a model from the Hub or from a config, output-folder safety and atomic result files."""

import contextlib
import csv
import gc
import gzip
import io
import json
import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import datasets
import huggingface_hub
import pyarrow
import pyarrow.compute
import safetensors
import torch
import transformers
import yaml
from transformers import AutoConfig, AutoTokenizer, HfArgumentParser, Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

logger = logging.getLogger(__name__)
REPO_DIR = Path(__file__).resolve().parent
RECIPE_SUFFIXES = (".yaml", ".yml", ".json")
DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".txt")


class PhaseClock:
    """Wall-clock seconds of each phase of a run, the first counted from the process's start (Python start-up,
    imports, argument parsing), for one log line at the end: where a whole run's time goes besides training."""

    def __init__(self, from_process_start=True):
        self.last, self.seconds = time.time() - (seconds_since_process_start() if from_process_start else 0), {}

    def mark(self, phase):
        now = time.time()
        self.seconds[phase] = now - self.last
        self.last = now

    def __str__(self):
        phases = ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in self.seconds.items())
        return f"{phases}; total {sum(self.seconds.values()):.1f}"


def seconds_since_process_start():
    """From the kernel's process start time (Linux, 10 ms ticks); 0 where /proc does not tell."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
            return float(uptime.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class InputError(Exception):
    """A problem with what the user gave us, reported as one line: which file, which row, what to do."""


def run_main(main):
    """Runs a script's main(); bad input ends with one error line and exit code 2 instead of a traceback."""
    try:
        main()
    except InputError as error:
        logger.debug("input error", exc_info=True)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except ImportError as error:  # an optional package a flag needs (--optim adamw_bnb_8bit, --use_liger_kernel, ...)
        logger.debug("missing package", exc_info=True)
        print(f"error: a package this run needs is missing: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        sys.exit(2)
    leave_process_group()


@contextlib.contextmanager
def cycle_collection_paused():
    """For reading the data. A data file becomes up to a million small dicts and lists, none in a reference cycle,
    and their allocation alone keeps triggering Python's cycle collector, which walks them all again each time
    (loading SQuAD train took about twice as long). Afterwards they, and the ~420k objects of the imports, stay out
    of its way (gc.freeze: the collections during tokenization skip them, 10-20% less time; reference counting still
    frees them). Measured in BENCHMARKS.md; freezing before the loading instead made tokenization slower."""
    gc.collect()  # what is garbage now goes before the freeze below
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
    gc.freeze()


def leave_process_group():
    """Under torchrun / accelerate launch: wait for every process, then close the process group. Without it, a process
    whose peer already exited sometimes aborts at exit ("terminate called without an active exception", exit -6)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


# ----------------------------------------------------------------------------------------------------------------
# Arguments


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
        if launched_processes() > 1 and not self.use_cpu and not accelerator_available():
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


def accelerator_available():
    accelerator = getattr(torch, "accelerator", None)
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


def parse_args(dataclass_types, argv=None):
    """Parses `[recipe.yaml] [--key value ...]`: the recipe file's keys first, command-line flags override them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types, allow_abbrev=False)  # --learning_rat must not pass for --learning_rate
    recipe_args, where = [], "the command line"
    if argv and not argv[0].startswith("-"):
        where = f"recipe file {argv[0]} or the command line"
        recipe_args = recipe_to_flags(argv.pop(0), actions={a.dest: a for a in parser._actions})

    def fail(message):  # argparse's own way prints its whole usage text (~130 lines) above the message
        raise InputError(f"{message}; fix the value in {where}")

    parser.error = fail
    try:
        parsed = parser.parse_args_into_dataclasses(args=recipe_args + argv, return_remaining_strings=True)
    except ValueError as error:  # TrainingArguments' own checks, e.g. bf16 asked on a machine without support
        message = " ".join(str(error).split())
        if re.search(r"bf16|tf32", message, re.IGNORECASE):  # the GPU recipes on a CPU or an older GPU
            message += " (on a CPU or a GPU older than Ampere, add --bf16 false --tf32 false)"
        raise InputError(f"the arguments do not fit together or this machine: {message}") from None
    *arguments, unknown = parsed
    if unknown:
        raise InputError(f"unknown command-line argument(s) {' '.join(redact_secrets(unknown))}; "
                         "see --help for the accepted flags")
    for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
        limits = [getattr(a, name) for a in arguments if getattr(a, name, None) is not None]
        if limits and limits[0] < 1:
            raise InputError(f"--{name} must be at least 1 (got {limits[0]}); leave it out to use every row")
    return tuple(arguments)


def redact_secrets(args):
    """Command-line words safe to print: the value of any *token* flag (misspelled ones too) and anything that looks
    like a Hub token are replaced, so a typo such as `--hub-tokn SECRET` never puts the token in a log."""
    safe, previous = [], ""
    for arg in args:
        key, equals, _ = arg.partition("=")
        secret_flag = equals and key.startswith("-") and "tok" in key.lower()
        if re.search(r"\bhf_[A-Za-z0-9]{8,}", arg) or "tok" in previous.lower():
            arg = f"{key}=<redacted>" if secret_flag else "<redacted>"
        elif secret_flag:
            arg = f"{key}=<redacted>"
        safe.append(arg)
        previous = arg if arg.startswith("-") and not equals else ""
    return safe


class RecipeLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice is an error: YAML keeps the last silently, so a second
    learning_rate line further down would quietly win."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({str(key) for key in keys if keys.count(key) > 1})
        if repeated:
            raise yaml.constructor.ConstructorError(None, None, f"key '{repeated[0]}' is given twice", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def recipe_to_flags(path, actions):
    """Turns a YAML/JSON recipe (a flat mapping of flag -> value) into command-line flags."""
    if not path.endswith(RECIPE_SUFFIXES):
        raise InputError(f"{path}: a recipe file must end in .yaml, .yml or .json (flags start with --)")
    if not os.path.isfile(path):
        raise InputError(f"recipe file {path} not found; give the path to a file under recipes/")
    try:
        with open(path, encoding="utf-8") as f:
            recipe = yaml.load(f, Loader=RecipeLoader)  # YAML is a superset of JSON, so one loader reads both
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise InputError(f"recipe file {path} is not valid YAML/JSON: {str(error).splitlines()[0]}") from None
    if not isinstance(recipe, dict):
        raise InputError(f"recipe file {path} must be a mapping of flag names to values")
    flags = []
    for key, value in recipe.items():
        if key not in actions:
            raise InputError(f"recipe file {path}: unknown key '{key}'; fix the name or remove it (see --help)")
        if value is None:
            continue
        if isinstance(value, list) and actions[key].nargs in (None, "?"):
            raise InputError(f"recipe file {path}: '{key}' takes one value, not a list; fix the recipe")
        if isinstance(value, list):
            flags += [f"--{key}"] + [str(v) for v in value]
        elif isinstance(value, dict):
            flags += [f"--{key}", json.dumps(value)]
        else:
            flags += [f"--{key}", str(value)]
    return flags


def set_up_logging(training_args):
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", handlers=[logging.StreamHandler()]
    )
    level = training_args.get_process_log_level()
    logger.setLevel(level)
    logging.getLogger("__main__").setLevel(level)
    transformers.utils.logging.set_verbosity(level)


# ----------------------------------------------------------------------------------------------------------------
# Data files


def split_suffix(path):
    """'dev.tsv.gz' -> '.tsv' (the format, whether gzipped or not)."""
    name = str(path)[:-3] if str(path).endswith(".gz") else str(path)
    return os.path.splitext(name)[1].lower()


def read_text(path, flag="a data file"):
    """The whole file as text (gzip handled). Missing files and bytes that are not UTF-8 are InputErrors."""
    if not os.path.isfile(path):
        if not os.path.isabs(path) and (REPO_DIR / path).is_file():  # a recipe's path, run from another folder
            raise InputError(f"{path}: file not found in {os.getcwd()}; the recipes' paths are relative to the "
                             f"repository: run from {REPO_DIR} or give {flag} an absolute path")
        raise InputError(f"{path}: file not found; check the path given to {flag}")
    with open(path, "rb") as f:
        raw = f.read()
    if str(path).endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise InputError(f"{path}: not a valid gzip file ({error}); re-download or decompress it") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(f"{path}, line {line}: bytes that are not UTF-8; re-save the file as UTF-8") from None


def text_lines(text):
    """Lines split at \\n, \\r\\n or \\r only: str.splitlines also splits at U+2028, U+0085, form feeds and other
    characters that are ordinary text inside a sentence or a JSON string."""
    return re.split(r"\r\n|\r|\n", text)


def read_records(path, flag="a data file"):
    """Rows of a .csv/.tsv/.json/.jsonl/.txt file (optionally .gz) as a list of dicts, each with its location
    under the key '_row' ("line 12" / "record 3") for error messages."""
    suffix = split_suffix(path)
    if suffix not in DATA_SUFFIXES:
        raise InputError(f"{path}: unsupported file type; use .csv, .tsv, .json, .jsonl or .txt (optionally .gz)")
    text = read_text(path, flag)
    if not text.strip():
        raise InputError(f"{path}: the file is empty; it needs a header and at least one row")
    if suffix == ".txt":  # one sentence per line, for prediction
        rows = [{"sentence": line, "_row": f"line {i}"} for i, line in enumerate(text_lines(text), 1) if line.strip()]
    elif suffix in (".csv", ".tsv"):
        rows = read_delimited(path, text, suffix)
    else:
        rows = read_json_rows(path, text, suffix)
    if not rows:
        raise InputError(f"{path}: no data rows (only a header?); add rows or fix the file")
    return rows


def read_delimited(path, text, suffix):
    # GLUE's .tsv files hold bare quote characters inside sentences: quoting must be off for tab-separated files. A
    # quoted .csv field may hold line breaks, so the reader gets the text with its line ends (newline="").
    options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
    reader = csv.reader(io.StringIO(text, newline=""), **options)
    try:
        header = next(reader)
        rows = []
        line_number = reader.line_num + 1  # where the next row starts: a row may span several lines
        for values in reader:
            row_line, line_number = line_number, reader.line_num + 1
            if not values:
                continue
            if len(values) != len(header):
                raise InputError(
                    f"{path}, line {row_line}: {len(values)} fields where the header has {len(header)}; "
                    f"fix that row (a stray {'tab' if suffix == '.tsv' else 'comma or quote'}?)"
                )
            rows.append({**dict(zip(header, values)), "_row": f"line {row_line}"})
    except csv.Error as error:
        raise InputError(f"{path}, line {reader.line_num}: {error}; fix the quoting of that row") from None
    return rows


def read_json_rows(path, text, suffix):
    """A JSON list of objects, {"data": [...]}, or JSON lines (datasets' json loader accepts all three)."""
    if suffix == ".json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            if text.lstrip().startswith("{") and "\n{" in text.strip():
                document = None  # JSON lines in a .json file
            else:
                raise InputError(f"{path}, line {error.lineno}: broken JSON ({error.msg}); fix the file") from None
        if document is not None:
            records = document.get("data") if isinstance(document, dict) else document
            if isinstance(document, dict) and records is None:
                records = [document]
            if not isinstance(records, list):
                raise InputError(f"{path}: expected a list of records (or {{\"data\": [...]}}); fix the file layout")
            return [check_object(path, record, f"record {i}") for i, record in enumerate(records)]
    rows = []
    for line_number, line in enumerate(text_lines(text), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}, line {line_number}: broken JSON line ({error.msg}); fix that line") from None
        rows.append(check_object(path, record, f"line {line_number}"))
    return rows


TSV_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")  # a tab, and whatever str.splitlines splits at


def tsv_cell(text):
    """Text for one cell of a TSV report: a tab or a line break inside it would split the row, so each run of them
    becomes one space; the rest of the text (GLUE's trailing spaces too) is kept as it is."""
    return TSV_BREAKS.sub(" ", str(text))


def check_object(path, record, where):
    if not isinstance(record, dict):
        raise InputError(f"{path}, {where}: expected a JSON object with named fields, got {type(record).__name__}")
    return {**record, "_row": where}


# ----------------------------------------------------------------------------------------------------------------
# Model


def load_tokenizer_and_config(model_args, **config_overrides):
    """Config and (fast) tokenizer from a Hub id or local folder; --config_name alone means training from scratch."""
    config_source = model_args.config_name or model_args.model_name_or_path
    tokenizer_source = model_args.tokenizer_name or model_args.model_name_or_path
    if not config_source or not tokenizer_source:
        raise InputError("give --model_name_or_path, or --config_name and --tokenizer_name to train from scratch")
    hub = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision,
           "trust_remote_code": model_args.trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(config_source, **hub, **config_overrides)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, **hub)
    except OSError as error:
        raise InputError(f"could not load the model {config_source!r}: {str(error).splitlines()[0]}") from None
    except ValueError as error:
        if "trust_remote_code" not in str(error):
            raise
        raise InputError(f"{config_source} ships its own Python code, which is not run by default; read it, and pass "
                         "--trust_remote_code only if you trust that repository") from None
    return config, tokenizer


def load_model(model_args, auto_class, config):
    if model_args.model_name_or_path is None:
        logger.info("No --model_name_or_path: training a new model from the config %s", model_args.config_name)
        model = auto_class.from_config(config, trust_remote_code=model_args.trust_remote_code)
    else:
        try:
            model = auto_class.from_pretrained(
                model_args.model_name_or_path, config=config, cache_dir=model_args.cache_dir,
                revision=model_args.model_revision, trust_remote_code=model_args.trust_remote_code,
            )
        except OSError as error:  # a folder or Hub repository with a config but no weights
            raise InputError(f"could not load the weights of {model_args.model_name_or_path!r}: "
                             f"{str(error).splitlines()[0].rstrip('.')}; to train from scratch pass "
                             "--model_name_or_path \"\" and --config_name") from None
    # The classification and QA heads return the mean loss of their batch and ignore `num_items_in_batch`. Their
    # forward() takes **kwargs, so the Trainer would otherwise assume they sum over items and multiply the loss by the
    # number of processes: with several processes the logged train/eval loss and the gradients came out N times too big.
    model.accepts_loss_kwargs = False
    return model


def check_training_setup(training_args, model, resume_from):
    """What the Trainer would find out only after the data is tokenized: the packages --optim and --use_liger_kernel
    need, and whether the checkpoint to resume from fits this run's model (one of another config has other weight
    shapes: compared in its safetensors headers, without loading the weights)."""
    if training_args.use_liger_kernel and not transformers.utils.is_liger_kernel_available():
        raise InputError("--use_liger_kernel needs the liger-kernel package: pip install liger-kernel, or drop the "
                         "flag")
    try:
        Trainer.get_optimizer_cls_and_kwargs(training_args, model)
    except ImportError as error:
        raise InputError(f"--optim {training_args.optim.value} needs a package that is not installed: "
                         f"{str(error).strip().splitlines()[0]}") from None
    if resume_from is None:
        return
    index = Path(resume_from, "model.safetensors.index.json")
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else [
        "model.safetensors"]
    if not all(Path(resume_from, file).is_file() for file in files):
        return  # an FSDP-sharded or .bin checkpoint: left to the Trainer (a mismatch there is a traceback)
    state = model.state_dict()
    shapes = {name: list(tensor.shape) for name, tensor in state.items()}
    saved_names = set()
    advice = "resume with the model, config and tokenizer it was trained with, or start afresh in another --output_dir"
    for file in files:
        with safetensors.safe_open(Path(resume_from, file), "pt") as weights:
            for name in weights.keys():
                saved_names.add(name)
                saved = weights.get_slice(name).get_shape()
                if name in shapes and saved != shapes[name]:
                    raise InputError(f"cannot resume from {resume_from}: its weights do not fit this run's model "
                                     f"(size mismatch for {name}: {saved} in the checkpoint, {shapes[name]} here); "
                                     f"{advice}")
    # Tied weights are saved once, under one of their names: a name missing from the checkpoint is fine when its
    # tensor is another name's that the checkpoint holds.
    saved_storage = {state[name].data_ptr() for name in saved_names if name in state}
    missing = [name for name in state if name not in saved_names and state[name].data_ptr() not in saved_storage]
    unexpected = sorted(saved_names - set(state))
    if missing or unexpected:
        found = "; ".join(f"{label} {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
                          for label, names in (("not in the checkpoint:", missing),
                                               ("in the checkpoint but not in this model:", unexpected)) if names)
        raise InputError(f"cannot resume from {resume_from}: it holds the weights of another model ({found}); "
                         f"{advice}")


def preprocessing_processes(requested, rows):
    """--preprocessing_num_workers for datasets.map: never more processes than CPU cores or rows (a recipe asks for
    16 and still runs on a laptop); 1 or fewer means the main process."""
    processes = min(requested or 1, os.cpu_count() or 1, rows)
    if processes <= 1:
        return None
    # One tokenizer thread per process: otherwise each of N processes starts a thread pool as large as the machine
    # (N x cores threads). An explicit TOKENIZERS_PARALLELISM from the user wins.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return processes


def map_in_processes(dataset, function, requested_processes, **map_args):
    """dataset.map(function, batched=True) in up to `requested_processes` worker processes (preprocessing_processes).
    datasets sends each worker its shard pickled, and a shard of an in-memory dataset pickles the whole table
    (pyarrow pickles a slice with its full buffers): 16 workers were sent 16 copies of SQuAD train's 79 MB, one after
    the other. So an in-memory dataset is first written to one Arrow file in datasets' temporary folder (removed at
    exit): a shard then pickles as a file name and a row range. The results stay in memory, as without workers."""
    processes = preprocessing_processes(requested_processes, len(dataset))
    in_memory = not dataset.cache_files
    if processes and in_memory:
        folder = tempfile.mkdtemp(dir=datasets.fingerprint.get_temporary_cache_files_directory())
        path = os.path.join(folder, "rows.arrow")
        rows = dataset.with_format("arrow")[:]  # in the dataset's order (a selection or shuffle applied)
        with pyarrow.OSFile(path, "wb") as sink, pyarrow.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
        dataset = datasets.Dataset.from_file(path, info=dataset.info)
    return dataset.map(function, batched=True, num_proc=processes, keep_in_memory=in_memory, **map_args)


def check_max_seq_length(max_seq_length, tokenizer, config):
    if max_seq_length < 1:  # the tokenizer would take 0 or less as "no truncation"
        raise InputError(f"--max_seq_length must be at least 1 (got {max_seq_length})")
    limit = min(tokenizer.model_max_length, getattr(config, "max_position_embeddings", tokenizer.model_max_length))
    if max_seq_length > limit:
        raise InputError(f"--max_seq_length {max_seq_length} is above the model's limit of {limit} tokens; lower it")


class OrderedEvalTrainer(Trainer):
    """A Trainer whose evaluation and prediction batches keep the dataset's order. The Trainer length-groups them
    too under --train_sampling_strategy group_by_length, and then the i-th prediction no longer belongs to the i-th
    row: failure reports and QA post-processing rely on that order."""

    def __init__(self, *args, dynamic_lengths=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.dynamic_lengths = dynamic_lengths  # False when every batch is padded to the same length
        self.replays_cuda_graphs = self.args.torch_compile and (
            self.args.torch_compile_backend == "cudagraphs"
            or self.args.torch_compile_mode in ("reduce-overhead", "max-autotune"))
        # The "cudagraphs" backend records a graph for the shapes it was compiled with and fails when a size changes
        # (at the short last batch of an epoch: "size of tensor a (32) must match ... b (12)"). Compile each shape
        # on its own instead: with padding to max_length, one graph for full batches and one for the last (and, in an
        # evaluation-only run, which compiles the evaluation model, one per evaluation batch size).
        self.static_shapes = self.args.torch_compile and self.args.torch_compile_backend == "cudagraphs"
        if self.static_shapes:
            torch._dynamo.config.automatic_dynamic_shapes = False
            if dynamic_lengths:
                logger.warning("CUDA graphs with batches padded to their longest row record a graph for every length "
                               "(and fall back to eager steps after 8): pass --pad_to_max_length true")

    def training_step(self, *args, **kwargs):
        if self.replays_cuda_graphs:
            # CUDA graphs replay into the same output memory each step: say that a new step begins, so the last
            # step's outputs (consumed by its backward) may be overwritten. A no-op without a GPU.
            torch.compiler.cudagraph_mark_step_begin()
        return super().training_step(*args, **kwargs)

    def prediction_step(self, *args, **kwargs):
        if not self.replays_cuda_graphs:
            return super().prediction_step(*args, **kwargs)
        torch.compiler.cudagraph_mark_step_begin()
        outputs = super().prediction_step(*args, **kwargs)
        # The next batch's replay writes into the same memory, while the Trainer keeps every batch's logits until
        # the end: keep copies.
        return torch.utils._pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, outputs)

    def init_hf_repo(self, *args, **kwargs):
        """--push_to_hub creates the Hub repository before training: a failure there (no network, no token, a name
        of someone else's) is one error line, before any training."""
        try:
            super().init_hf_repo(*args, **kwargs)
        except Exception as error:
            from model_card import describe_push_error, known_tokens, scrub_tokens

            repo = self.args.hub_model_id or Path(self.args.output_dir).absolute().name
            reason = scrub_tokens(describe_push_error(error, repo), known_tokens(self.args))
            raise InputError(f"--push_to_hub: could not create the Hub repository {repo} ({reason}); nothing was "
                             "trained: fix that, or drop --push_to_hub and push later with push_to_hub.py") from None

    def _push_from_checkpoint(self, checkpoint_folder):
        """--hub_strategy every_save / checkpoint / all_checkpoints: the Trainer uploads the whole output folder at
        each save, skipping only checkpoint folders. Skip as well what our final push never uploads: predictions and
        failure reports that quote the data, and README.md / MODEL_CARD.md (a README.md may be the user's; the card
        comes with the final push)."""
        import transformers.trainer as trainer_module
        from model_card import CARD_FALLBACK, IGNORE_PATTERNS

        real_hf_api, output_dir = trainer_module.hf_api, self.args.output_dir

        class OutputFolderFiltered:
            def __init__(self, api):
                self.api = api

            def __getattr__(self, name):
                return getattr(self.api, name)

            def upload_folder(self, **kwargs):
                if kwargs.get("folder_path") == output_dir:
                    kwargs["ignore_patterns"] = [*(kwargs.get("ignore_patterns") or []), *IGNORE_PATTERNS,
                                                 "README.md", CARD_FALLBACK]
                return self.api.upload_folder(**kwargs)

        trainer_module.hf_api = lambda: OutputFolderFiltered(real_hf_api())
        try:
            super()._push_from_checkpoint(checkpoint_folder)
        finally:
            trainer_module.hf_api = real_hf_api

    def _prepare_inputs(self, inputs):
        inputs = super()._prepare_inputs(inputs)
        if self.args.torch_compile and not self.static_shapes:
            # The batch size changes at the end of an epoch, and the length of every batch with dynamic padding: say
            # so up front, or torch.compile compiles a second time (as long as the first) when the change comes.
            # A length that never changes stays static, which makes faster kernels.
            for value in inputs.values():
                if isinstance(value, torch.Tensor) and value.dim() >= 1:
                    torch._dynamo.maybe_mark_dynamic(value, 0)
                    if self.dynamic_lengths and value.dim() >= 2:
                        torch._dynamo.maybe_mark_dynamic(value, 1)
        return inputs

    def _get_eval_sampler(self, eval_dataset):
        if self.args.world_size <= 1:
            return torch.utils.data.SequentialSampler(eval_dataset)
        return None  # distributed: the Trainer's own sequential sharding

    def _get_train_sampler(self, *args, **kwargs):
        dataset = args[0] if args else kwargs.get("train_dataset", self.train_dataset)
        if (self.args.train_sampling_strategy == "group_by_length" and hasattr(dataset, "with_format")
                and "input_ids" in dataset.column_names):
            # The Trainer would measure every row in Python (~25 s for SQuAD's 88k windows); Arrow has the lengths.
            lengths = pyarrow.compute.list_value_length(dataset.with_format("arrow")["input_ids"]).to_pylist()
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=lengths)
        return super()._get_train_sampler(*args, **kwargs)


def train_and_save(trainer, resume_from, train_samples):
    """Trains, saves the final model, tokenizer and trainer state, writes train_results.json; returns the metrics."""
    result = trainer.train(resume_from_checkpoint=resume_from)  # (check_training_setup: the checkpoint fits)
    trainer.save_model(_internal_call=True)  # no Trainer push here: ours, at the end, carries our model card
    trainer.save_state()
    metrics = {**result.metrics, "train_samples": train_samples}
    trainer.log_metrics("train", metrics)
    if trainer.is_world_process_zero():
        save_metrics(trainer.args.output_dir, "train", metrics)
    return metrics


# ----------------------------------------------------------------------------------------------------------------
# Output folder


def umask_file_mode():
    umask = os.umask(0)  # the only way to read the umask is to set it
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = umask_file_mode()  # what open() would give a new file (mkstemp's files are private: 0600)


def atomic_write_text(path, text):
    """Writes through a temp file and a rename, so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def atomic_write_json(path, obj, entry_per_line=False):
    """entry_per_line: a large mapping (SQuAD's 10k predictions) as one compact line per key, still readable and
    about twice as fast to write as indented JSON (which Python's C encoder does not do)."""
    if entry_per_line and isinstance(obj, dict) and obj:
        entries = ",\n".join(f"  {json.dumps(str(key), ensure_ascii=False)}: {json.dumps(value, ensure_ascii=False)}"
                              for key, value in obj.items())
        atomic_write_text(path, "{\n" + entries + "\n}\n")
    else:
        atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def save_metrics(output_dir, split, metrics):
    """<split>_results.json, plus the same keys merged into all_results.json (the Trainer's layout)."""
    atomic_write_json(Path(output_dir) / f"{split}_results.json", metrics)
    all_path = Path(output_dir) / "all_results.json"
    all_results = json.loads(all_path.read_text()) if all_path.exists() else {}
    atomic_write_json(all_path, {**all_results, **metrics})


CHECKPOINT_NAME = re.compile(r"checkpoint-\d+")
# What a training run writes into --output_dir before its first checkpoint (evaluations during training, TensorBoard)
WRITTEN_BEFORE_FIRST_CHECKPOINT = {"eval_predictions.json", "eval_nbest_predictions.json", "eval_null_odds.json",
                                   "runs"}
MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
               "adapter_model.safetensors", "pytorch_model_fsdp_0")  # the last one: FSDP's sharded state dict folder


def is_complete_checkpoint(folder):
    """The Trainer writes trainer_state.json last: a checkpoint without a readable one was cut off mid-write."""
    folder = Path(folder)
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return any((folder / name).exists() for name in MODEL_FILES)


def run_checkpoints(output_dir):
    """The checkpoint-N folders the Trainer wrote into output_dir, oldest first."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and CHECKPOINT_NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def check_checkpoint_rotation_is_safe(training_args, output_dir, checkpoints):
    """The Trainer's save_total_limit deletes the oldest `checkpoint-*` folders in output_dir whose *path* holds
    `checkpoint-<digits>` (transformers.trainer_utils.sort_checkpoints: in .../from-checkpoint-500/checkpoint-best the
    number comes from the parent's name): make sure none of them is a user's folder or a checkpoint of an earlier run."""
    if not training_args.save_total_limit or training_args.save_total_limit <= 0:
        return
    lookalikes = [p.name for p in output_dir.glob("checkpoint-*")
                  if p.is_dir() and re.match(r".*checkpoint-[0-9]", str(p)) and not CHECKPOINT_NAME.fullmatch(p.name)]
    if lookalikes:
        raise InputError(
            f"--output_dir {output_dir} holds {', '.join(sorted(lookalikes))}, which --save_total_limit could delete "
            "as an old checkpoint; rename it or choose another --output_dir"
        )
    if checkpoints and training_args.overwrite_output_dir:
        raise InputError(
            f"--output_dir {output_dir} holds checkpoints of an earlier run ({checkpoints[-1].name}, ...) that "
            "--save_total_limit would delete; resume that run (drop --overwrite_output_dir), remove --save_total_limit "
            "or choose another --output_dir"
        )


def checkpoint_to_resume(training_args):
    """The output-folder policy. Returns the checkpoint to resume from (or None for a fresh run):
    --resume_from_checkpoint PATH wins; otherwise the newest complete checkpoint-N in --output_dir (half-written ones,
    left by a run killed while saving, are skipped). A non-empty --output_dir holding no checkpoint is refused unless
    --overwrite_output_dir. Nothing is deleted."""
    if not training_args.do_train:
        return None
    output_dir = Path(training_args.output_dir)
    checkpoints = run_checkpoints(output_dir) if output_dir.is_dir() else []
    check_checkpoint_rotation_is_safe(training_args, output_dir, checkpoints)
    explicit = training_args.resume_from_checkpoint
    if explicit:
        if not os.path.isdir(explicit):
            raise InputError(f"--resume_from_checkpoint {explicit}: no such folder; give a checkpoint-N folder")
        if not is_complete_checkpoint(explicit):
            raise InputError(f"--resume_from_checkpoint {explicit}: not a complete checkpoint folder (no readable "
                             "trainer_state.json or model weights); give an earlier checkpoint-N folder")
        return explicit
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return None
    for incomplete in (p for p in checkpoints if not is_complete_checkpoint(p)):
        logger.warning("Skipping %s: it was not completely written (the run was cut off while saving)", incomplete)
    complete = [p for p in checkpoints if is_complete_checkpoint(p)]
    if complete and not training_args.overwrite_output_dir:
        logger.warning("Resuming from %s (the last complete checkpoint in --output_dir)", complete[-1])
        return str(complete[-1])
    if training_args.overwrite_output_dir:
        return None
    if all(p in checkpoints or p.name in WRITTEN_BEFORE_FIRST_CHECKPOINT for p in output_dir.iterdir()):
        # only what this run writes before its first complete checkpoint (half-written checkpoints, evaluation
        # predictions): it was killed before that checkpoint; it starts again and overwrites them as it goes
        return None
    raise InputError(
        f"--output_dir {output_dir} is not empty and holds no checkpoint to resume; choose another --output_dir "
        "or pass --overwrite_output_dir to write into it (files already there are kept)"
    )
