"""The model card (README.md) of a finished output folder: what the model is, its results, how to use it, how it
was trained. Each script hands build_model_card() a TaskCard with what is particular to its task."""

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from finetune.cli import TOKEN_FLAGS

REPO_DIR = Path(__file__).resolve().parent.parent
CARD_MARKER = "<!-- model card written by the finetune recipes"  # in every card we write: how we know a README.md is ours
# Cards written before the package had its name carry this one.
CARD_MARKERS = (CARD_MARKER, "<!-- model card written by model_card.py")
# Metric names differ between metric implementations (the squad_v2 metric says "exact", not "exact_match").
METRIC_ALIASES = {"exact_match": ["exact_match", "exact"], "accuracy": ["accuracy"], "f1": ["f1"]}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class TaskCard:
    """What a card says that depends on the task: its Hub metadata, the dataset it was made for, the metrics to
    report (name in the results, name to show) and a usage snippet, a template with {repo_id}."""

    name: str  # sst2, squad, squad_v2
    pipeline_tag: str
    task_name: str
    dataset_id: str
    dataset_config: str | None
    dataset_title: str
    metrics: tuple
    tags: tuple
    usage: str
    details: str = ""  # a sentence on what the model reads and predicts (its labels)
    examples: str = "examples"  # what the evaluation's examples are, for "(95% CI ..., 872 sentences)"

    def usage_snippet(self, repo_id):
        return self.usage.replace("{repo_id}", repo_id)


def looks_like_hub_id(name):
    return bool(name) and HUB_ID.match(str(name)) is not None and not os.path.exists(name)


def hub_id_of_local_folder(folder):
    """The Hub id a local folder came from, if it recorded one; None otherwise (a local path never leaves here)."""
    folder = Path(folder).resolve()
    # A snapshot in the Hub cache: .../models--org--name/snapshots/<sha>
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.parent.parent.name[len("models--"):].replace("--", "/")
    try:
        name = json.loads((folder / "config.json").read_text()).get("_name_or_path")
        if name and looks_like_hub_id(name) and not name.startswith((".", "/", "~")):
            return name
    except (OSError, ValueError):
        pass
    metadata = read_card_metadata(folder / "README.md")
    base = metadata.get("base_model")
    base = base[0] if isinstance(base, list) and base else base
    return base if isinstance(base, str) and looks_like_hub_id(base) else None


def read_card_metadata(path):
    try:
        from huggingface_hub import ModelCard

        return ModelCard.load(path, ignore_metadata_errors=True).data.to_dict()
    except Exception:
        return {}


def base_model_hub_id(model_name_or_path):
    if not model_name_or_path:
        return None
    if os.path.isdir(model_name_or_path):
        return hub_id_of_local_folder(model_name_or_path)
    return model_name_or_path if looks_like_hub_id(model_name_or_path) else None


def base_model_license(model_name_or_path, hub_id, revision=None, download=True):
    """The base model's license from its card: a local folder's README.md, the Hub cache, or (online, download) the
    Hub."""
    if model_name_or_path and os.path.isdir(model_name_or_path):
        license_ = read_card_metadata(Path(model_name_or_path) / "README.md").get("license")
        if license_:
            return license_
    if not hub_id:
        return None
    try:
        from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

        path = try_to_load_from_cache(hub_id, "README.md", revision=revision)
        if not isinstance(path, str) and download and not constants.HF_HUB_OFFLINE:
            path = hf_hub_download(hub_id, "README.md", revision=revision, etag_timeout=5)
        return read_card_metadata(path).get("license") if isinstance(path, str) else None
    except Exception:  # the license is a nicety: no network or no card means we leave it out
        return None


def public_path(value):
    """A path as it may appear in a public card: relative to the recipe repository, else only its last part."""
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        return value
    try:
        return str(path.resolve().relative_to(REPO_DIR))
    except ValueError:
        return f"path/to/{path.name}"


def public_command(argv, base_hub_id=None, hub_model_id=None):
    """The command that reproduces the run, with tokens dropped, local paths scrubbed and the push flags set."""
    if not argv:
        return None
    script = public_path(argv[0])
    args, skip = [], False
    for i, arg in enumerate(argv[1:]):
        if skip:
            skip = False
            continue
        flag = arg.split("=", 1)[0]
        if flag in TOKEN_FLAGS:
            skip = "=" not in arg  # the value is the next argument
            continue
        previous = argv[i] if i > 0 else ""
        if previous == "--model_name_or_path" and os.path.isdir(os.path.expanduser(arg)):
            arg = base_hub_id or public_path(arg)
        elif not arg.startswith("-") and (os.path.isabs(os.path.expanduser(arg)) or arg.startswith("~")):
            arg = public_path(arg)
        args.append(arg)
    if hub_model_id and "--hub_model_id" not in args:
        args += ["--push_to_hub", "--hub_model_id", hub_model_id] if "--push_to_hub" not in args else \
            ["--hub_model_id", hub_model_id]
    return " ".join(["python", shlex.quote(script)] + [shlex.quote(a) for a in args])


def find_metric(metrics, name):
    for alias in METRIC_ALIASES.get(name, [name]):
        for key in (f"eval_{alias}", alias):
            if isinstance(metrics.get(key), (int, float)):
                return float(metrics[key])
    return None


def find_interval(metrics, name):
    """(low, high) of a metric's 95% interval (eval_<metric>_ci_low / _ci_high), or None."""
    for alias in METRIC_ALIASES.get(name, [name]):
        ends = [metrics.get(f"eval_{alias}_ci_{end}") for end in ("low", "high")]
        if all(isinstance(end, (int, float)) for end in ends):
            return float(ends[0]), float(ends[1])
    return None


def result_line(task, metric, pretty, value, metrics):
    """"- F1: 88.1234 (95% CI 87.5012–88.7321, 10,570 questions)": the interval when the evaluation stated one."""
    interval, count = find_interval(metrics, metric), metrics.get("eval_samples")
    if interval is None:
        return f"- {pretty}: {value:.4f}"
    noun = task.examples
    counted = f", {count:,} {noun}" if isinstance(count, int) else ""
    return f"- {pretty}: {value:.4f} (95% CI {interval[0]:.4f}–{interval[1]:.4f}{counted})"


def early_stop_note(trainer_state, metric=None):
    """One sentence when early stopping ended the training before its planned end, else None."""
    stopper = (trainer_state.get("stateful_callbacks") or {}).get("EarlyStoppingCallback")
    stopper = stopper[-1] if isinstance(stopper, list) and stopper else stopper
    if not isinstance(stopper, dict):
        return None
    patience = (stopper.get("args") or {}).get("early_stopping_patience")
    waited = (stopper.get("attributes") or {}).get("early_stopping_patience_counter", 0)
    step, steps = trainer_state.get("global_step") or 0, trainer_state.get("max_steps") or 0
    if not patience or waited < patience or step >= steps:
        return None
    metric = f"eval_{metric.removeprefix('eval_')}" if metric else "the evaluation metric"
    best = trainer_state.get("best_metric")
    best_step = trainer_state.get("best_global_step")
    kept = (f"; the model is the best evaluation's ({metric} {best:.4g} at step {best_step})"
            if isinstance(best, (int, float)) else "")
    return (f"Training stopped early at epoch {trainer_state.get('epoch') or 0:.3g} of "
            f"{trainer_state.get('num_train_epochs')} (step {step} of {steps}): {metric} did not improve for "
            f"{patience} evaluation{'s' * (patience > 1)} in a row{kept}.")


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def hyperparameters(training_args, data_args=None, trainer_state=None):
    rows = {}
    if training_args is not None:
        a = training_args
        world = max(getattr(a, "world_size", 1) or 1, 1)
        rows.update({
            "learning_rate": a.learning_rate,
            "train_batch_size (per device)": a.per_device_train_batch_size,
            "eval_batch_size (per device)": a.per_device_eval_batch_size,
            "gradient_accumulation_steps": a.gradient_accumulation_steps,
            "total_train_batch_size": a.per_device_train_batch_size * a.gradient_accumulation_steps * world,
            "seed": a.seed,
            "optimizer": f"{getattr(a.optim, 'value', a.optim)} (betas=({a.adam_beta1}, {a.adam_beta2}), "
                         f"epsilon={a.adam_epsilon}, weight_decay={a.weight_decay})",
            "lr_scheduler_type": getattr(a.lr_scheduler_type, "value", a.lr_scheduler_type),
            "warmup_steps": a.warmup_steps,  # below 1: a fraction of the training steps
            "num_epochs": a.num_train_epochs,
        })
        if a.max_steps and a.max_steps > 0:
            rows["max_steps"] = a.max_steps
        if a.bf16 or a.fp16:
            rows["mixed_precision"] = "bf16" if a.bf16 else "fp16"
    elif trainer_state:
        rows.update({"train_batch_size": trainer_state.get("train_batch_size"),
                     "num_epochs": trainer_state.get("num_train_epochs"), "max_steps": trainer_state.get("max_steps")})
    for name in ("max_seq_length", "doc_stride", "max_answer_length", "version_2_with_negative"):
        value = getattr(data_args, name, None)
        if value is not None:
            rows[name] = value
    return {k: v for k, v in rows.items() if v is not None}


def training_results_table(log_history):
    """One row per evaluation (with the latest training loss before it), as the Trainer's cards show them. SQuAD's
    evaluation has no loss: then no Validation Loss column."""
    rows, last_train_loss = [], "No log"
    metric_names = []
    skipped = ("eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "eval_samples")
    for entry in log_history or []:
        if "loss" in entry:
            last_train_loss = f"{entry['loss']:.4f}"
        if any(k.startswith("eval_") and k not in skipped[1:] for k in entry):
            for key in entry:
                if (key.startswith("eval_") and key not in skipped and key not in metric_names
                        and not key.endswith(("_ci_low", "_ci_high"))):  # the results section quotes the intervals
                    metric_names.append(key)
            rows.append((last_train_loss, entry))
    if not rows:
        return None
    with_loss = any("eval_loss" in entry for _, entry in rows)
    header = (["Training Loss", "Epoch", "Step"] + ["Validation Loss"] * with_loss
              + [k[len("eval_"):].replace("_", " ").title() for k in metric_names])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":---:" for _ in header) + "|"]
    for train_loss, entry in rows:
        cells = [train_loss, f"{entry.get('epoch', 0):.1f}", str(entry.get("step", ""))]
        cells += [f"{entry['eval_loss']:.4f}" if "eval_loss" in entry else ""] * with_loss
        cells += [f"{entry[k]:.4f}" if isinstance(entry.get(k), (int, float)) else "" for k in metric_names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def framework_versions():
    versions = []
    for package in ("transformers", "torch", "datasets", "tokenizers", "huggingface_hub"):
        try:
            from importlib.metadata import version

            versions.append(f"- {package} {version(package.replace('_', '-'))}")
        except Exception:
            pass
    return "\n".join(versions)


def recipe_of(argv):
    if argv and len(argv) > 1 and argv[1].endswith((".yaml", ".yml", ".json")) and not argv[1].startswith("-"):
        return public_path(argv[1])
    return None


DATA_FILES = (("train_file", "do_train", "training"), ("validation_file", "do_eval", "evaluation"),
              ("test_file", "do_predict", "prediction"))


def splits_read(training_args, data_args):
    """(file or None, role) of each split the run read: a split given as a file was not read from the Hub."""
    return [(getattr(data_args, flag, None), role) for flag, needed, role in DATA_FILES
            if getattr(training_args, needed, False)]


def reads_hub_data(training_args, data_args):
    """Whether a split of the run came from the Hub dataset (a recipe keeps its dataset_name while every split may be
    given as a file); without the run's arguments, whether a Hub dataset was named."""
    if training_args is None or data_args is None:
        return True
    return any(not path for path, _ in splits_read(training_args, data_args))


def local_files_read(training_args, data_args):
    """The local files the run read, as a card may name them: base name (never the path), size and role."""
    if training_args is None or data_args is None:
        return ""
    files = [f"`{Path(path).name}` ({os.path.getsize(path):,} bytes, {role})"
             for path, role in splits_read(training_args, data_args) if path and os.path.isfile(path)]
    return "the local files " + ", ".join(files) if files else ""


def push_note(training_args):
    strategy = getattr(training_args.hub_strategy, "value", training_args.hub_strategy)
    if strategy == "end":
        return ("This model was pushed with this card once the run had completely written its output folder "
                "(`--hub_strategy end`), not during training.")
    return (f"During training the Trainer also pushed the output folder at every save (`--hub_strategy {strategy}`, "
            "commits \"Training in progress\"); this card came with the final push of the finished folder.")


def build_model_card(output_dir, repo_id, task, model_name_or_path=None, config_name=None, metrics=None,
                     training_args=None, data_args=None, argv=None, dataset_name=None, dataset_config=None,
                     license=None, language="en", model_revision=None, download=True):
    """The README.md text for `output_dir`, to be published as `repo_id`; `task` is the script's TaskCard. Contains no
    local path (tokens: see finetune.hub)."""
    from huggingface_hub import EvalResult, ModelCardData

    output_dir = Path(output_dir)
    metrics = metrics if metrics else (read_json(output_dir / "all_results.json") or {})
    trainer_state = read_json(output_dir / "trainer_state.json") or {}
    base_id = base_model_hub_id(model_name_or_path)
    license = license or base_model_license(model_name_or_path, base_id, model_revision, download)

    # Canonical dataset metadata only when the run really used the Hub dataset; local files get a plain name.
    files_read = local_files_read(training_args, data_args)
    dataset_name = dataset_name or (getattr(data_args, "dataset_name", None) if reads_hub_data(training_args, data_args)
                                    else None)
    dataset_config = dataset_config or getattr(data_args, "dataset_config_name", None)
    if dataset_name and not looks_like_hub_id(dataset_name):
        dataset_name = None  # a local dataset folder/script path must not leak
    if dataset_name:
        canonical = dataset_name in (task.dataset_id, task.dataset_id.split("/")[-1])
        dataset_meta = {"dataset_type": dataset_name, "dataset_name": task.dataset_title if canonical else dataset_name,
                        "dataset_config": dataset_config or (task.dataset_config if canonical else None)}
    else:
        dataset_meta = {"dataset_type": task.name, "dataset_name": f"{task.dataset_title} (local files)",
                        "dataset_config": None}

    eval_results = []
    for metric, pretty in task.metrics:
        value = find_metric(metrics, metric)
        if value is not None:
            eval_results.append(EvalResult(
                task_type=task.pipeline_tag, task_name=task.task_name, dataset_split="validation",
                metric_type=metric, metric_name=pretty, metric_value=round(value, 4), **dataset_meta))
    card_data = ModelCardData(
        language=language, license=license, library_name="transformers", base_model=base_id,
        datasets=[dataset_name] if dataset_name else None, tags=list(task.tags),
        pipeline_tag=task.pipeline_tag, model_name=repo_id, eval_results=eval_results or None,
    )

    if base_id:
        origin = f"a fine-tuned version of [{base_id}](https://huggingface.co/{base_id})"
    elif model_name_or_path:
        origin = "fine-tuned from a local checkpoint (no Hub id was recorded for it)"
    else:
        origin = "a model trained from scratch" + (f" (architecture from `{public_path(config_name)}`)" if config_name else "")
    if dataset_name:
        data_text = (f"[{dataset_name}](https://huggingface.co/datasets/{dataset_name})"
                     + (f" (`{dataset_config}`)" if dataset_config else "")
                     + (f" and {files_read}" if files_read else ""))
    else:
        data_text = files_read or "local data files"
    results = "\n".join(result_line(task, r.metric_type, r.metric_name, r.metric_value, metrics)
                        for r in eval_results) or "- (no evaluation was run)"
    threshold = (read_json(output_dir / "config.json") or {}).get("null_score_diff_threshold")
    if threshold is not None:  # a question-answering model that can say "no answer"
        results += (f"\n- No-answer threshold: {threshold!r} (the answer is \"\" when the no-answer score beats the best "
                    "answer's by more; the value of the best F1 on the evaluation set, used by default)")

    stopped = early_stop_note(trainer_state, getattr(training_args, "metric_for_best_model", None))
    if stopped:
        results += f"\n\n{stopped}"

    sections = [
        f"---\n{card_data.to_yaml()}\n---",
        f"{CARD_MARKER}; repo_id: {repo_id} -->",
        f"# {repo_id.split('/')[-1]}",
        f"This model is {origin}, for {task.task_name.lower()} on {data_text}." + (f" {task.details}" if task.details
                                                                                     else ""),
        f"It achieves the following results on the evaluation set:\n\n{results}",
        f"## How to use\n\n```python\n{task.usage_snippet(repo_id)}\n```",
        "## Training hyperparameters\n\n" + "\n".join(
            f"- {k}: {v}" for k, v in hyperparameters(training_args, data_args, trainer_state).items()),
    ]
    table = training_results_table(trainer_state.get("log_history"))
    if table:
        sections.append(f"## Training results\n\n{table}")
    command = public_command(argv, base_id, repo_id)
    if command:
        recipe = recipe_of(argv)
        where = f"the recipe file `{recipe}` and " if recipe else ""
        sections.append(f"## Reproduce\n\nTrained with {where}this command, from the root of the recipe repository:"
                        f"\n\n```bash\n{command}\n```")
    if getattr(training_args, "push_to_hub", False):
        sections.append(push_note(training_args))
    sections.append(f"## Framework versions\n\n{framework_versions()}")
    return "\n\n".join(sections) + "\n"
