"""Model card (README.md) for a finished output folder, and the final push of that folder to the Hub.

The scripts call, once everything is saved and on the main process only:

    push_output_dir(training_args, task="sst2", model_args=model_args, data_args=data_args,
                    metrics=all_metrics, argv=sys.argv)

or, after training without --push_to_hub, save_model_card(...) with the same arguments (push_to_hub.py pushes
that card later).

Our push, not Trainer.push_to_hub: the Trainer's card names the base model by whatever path was given (a local
folder path would leak into a public card) and has no usage snippet. A failed push raises PushError (an
InputError: one line, exit code 2) saying what failed and the exact retry command; the output folder keeps the
trained model. `python push_to_hub.py OUTPUT_DIR --hub_model_id ID` retries without retraining.
"""

import json
import logging
import os
import re
import shlex
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent
CARD_MARKER = "<!-- model card written by model_card.py"  # in every card we write: how we know a README.md is ours
# Where our card is kept when the output folder holds a README.md we did not write (the user's own, never
# overwritten and not pushed); it is pushed as the repo's README.md.
CARD_FALLBACK = "MODEL_CARD.md"

from common import InputError, atomic_write_text

logger = logging.getLogger(__name__)


class PushError(InputError):
    """The push failed; the message says what failed and how to retry. Never contains a token."""


TASKS = {
    "sst2": {
        "pipeline_tag": "text-classification", "task_name": "Text Classification",
        "dataset_id": "nyu-mll/glue", "dataset_config": "sst2", "dataset_title": "GLUE SST-2",
        "metrics": [("accuracy", "Accuracy"), ("f1", "F1")], "tags": ["text-classification", "sst2", "bert"],
        "script": "run_glue_sst2.py",
    },
    "squad": {
        "pipeline_tag": "question-answering", "task_name": "Question Answering",
        "dataset_id": "rajpurkar/squad", "dataset_config": None, "dataset_title": "SQuAD v1.1",
        "metrics": [("exact_match", "Exact Match"), ("f1", "F1")], "tags": ["question-answering", "squad", "bert"],
        "script": "run_squad.py",
    },
    "squad_v2": {
        "pipeline_tag": "question-answering", "task_name": "Question Answering",
        "dataset_id": "rajpurkar/squad_v2", "dataset_config": None, "dataset_title": "SQuAD v2.0",
        "metrics": [("exact_match", "Exact Match"), ("f1", "F1")], "tags": ["question-answering", "squad_v2", "bert"],
        "script": "run_squad.py",
    },
}
# Metric names differ between metric implementations (the squad_v2 metric says "exact", not "exact_match").
METRIC_ALIASES = {"exact_match": ["exact_match", "exact"], "accuracy": ["accuracy"], "f1": ["f1"]}
TOKEN_FLAGS = ("--hub_token", "--token")
# What is not pushed: checkpoints (the Trainer pushes those itself with --hub_strategy checkpoint), TensorBoard
# runs, temp files, and per-example reports that quote the user's own data.
IGNORE_PATTERNS = [
    "checkpoint-*", "checkpoint-*/**", "runs/**", "**/runs/**", ".*", "**/.*", "*.tmp",
    "eval_failures.tsv", "predict_results.tsv", "*predictions*.json", "*nbest*.json", "*null_odds*.json",
]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


# ---------------------------------------------------------------------------------------------------------------
# Secrets and local paths


def known_tokens(training_args=None):
    """Every token this process could be using, so we can make sure none is ever written or printed."""
    tokens = {getattr(training_args, "hub_token", None), os.environ.get("HF_TOKEN"),
              os.environ.get("HUGGING_FACE_HUB_TOKEN")}
    try:
        from huggingface_hub import get_token

        tokens.add(get_token())
    except Exception:
        pass
    return {t for t in tokens if t and len(t) >= 4}


def scrub_tokens(text, tokens):
    for token in sorted(tokens, key=len, reverse=True):
        text = text.replace(token, "<hub_token>")
    return re.sub(r"\bhf_[A-Za-z0-9]{20,}\b", "<hub_token>", text)  # any Hub-looking token, known or not


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


# ---------------------------------------------------------------------------------------------------------------
# Card


def find_metric(metrics, name):
    for alias in METRIC_ALIASES.get(name, [name]):
        for key in (f"eval_{alias}", alias):
            if isinstance(metrics.get(key), (int, float)):
                return float(metrics[key])
    return None


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
                if key.startswith("eval_") and key not in skipped and key not in metric_names:
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


def usage_snippet(task, repo_id):
    if TASKS[task]["pipeline_tag"] == "text-classification":
        return (f'from transformers import pipeline\n\n'
                f'classifier = pipeline("text-classification", model="{repo_id}")\n'
                f'print(classifier("a gripping, beautifully acted film"))\n'
                f"# [{{'label': 'positive', 'score': ...}}]")
    # transformers 5 has no "question-answering" pipeline: the model, its logits and the best span in the context
    return (f'import torch\n'
            f'from transformers import AutoModelForQuestionAnswering, AutoTokenizer\n\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")\n'
            f'model = AutoModelForQuestionAnswering.from_pretrained("{repo_id}").eval()\n'
            f'question = "Where is the Eiffel Tower?"\n'
            f'context = "The Eiffel Tower is a wrought-iron lattice tower in Paris, France."\n'
            f'inputs = tokenizer(question, context, truncation="only_second", return_offsets_mapping=True,\n'
            f'                   return_tensors="pt")  # a longer context is cut: run_squad.py --do_predict uses windows\n'
            f'offsets = inputs.pop("offset_mapping")[0]\n'
            f'outside = torch.tensor([sequence != 1 for sequence in inputs.sequence_ids(0)])  # the question, [CLS]...\n'
            f'with torch.no_grad():\n'
            f'    outputs = model(**inputs)\n'
            f'start_logits = outputs.start_logits[0].masked_fill(outside, float("-inf"))\n'
            f'end_logits = outputs.end_logits[0].masked_fill(outside, float("-inf"))\n'
            f'start = int(start_logits.argmax())\n'
            f'end = start + int(end_logits[start:start + 30].argmax())  # answers of at most 30 tokens\n'
            f'print(context[offsets[start][0]:offsets[end][1]])\n'
            f'# Paris, France')


def recipe_of(argv):
    if argv and len(argv) > 1 and argv[1].endswith((".yaml", ".yml", ".json")) and not argv[1].startswith("-"):
        return public_path(argv[1])
    return None


def build_model_card(output_dir, repo_id, task, model_name_or_path=None, config_name=None, metrics=None,
                     training_args=None, data_args=None, argv=None, dataset_name=None, dataset_config=None,
                     license=None, language="en", model_revision=None, download=True):
    """The README.md text for `output_dir`, to be published as `repo_id`. Contains no token and no local path."""
    from huggingface_hub import EvalResult, ModelCardData

    spec = TASKS[task]
    output_dir = Path(output_dir)
    metrics = metrics if metrics else (read_json(output_dir / "all_results.json") or {})
    trainer_state = read_json(output_dir / "trainer_state.json") or {}
    base_id = base_model_hub_id(model_name_or_path)
    license = license or base_model_license(model_name_or_path, base_id, model_revision, download)

    # Canonical dataset metadata only when the run really used the Hub dataset; local files get a plain name.
    dataset_name = dataset_name or getattr(data_args, "dataset_name", None)
    dataset_config = dataset_config or getattr(data_args, "dataset_config_name", None)
    if dataset_name and not looks_like_hub_id(dataset_name):
        dataset_name = None  # a local dataset folder/script path must not leak
    if dataset_name:
        dataset_meta = {"dataset_type": dataset_name, "dataset_name": spec["dataset_title"] if dataset_name in (
            spec["dataset_id"], spec["dataset_id"].split("/")[-1]) else dataset_name,
                        "dataset_config": dataset_config or (spec["dataset_config"] if dataset_name in (
                            spec["dataset_id"], "glue") else None)}
    else:
        dataset_meta = {"dataset_type": task, "dataset_name": f"{spec['dataset_title']} (local files)",
                        "dataset_config": None}

    eval_results = []
    for metric, pretty in spec["metrics"]:
        value = find_metric(metrics, metric)
        if value is not None:
            eval_results.append(EvalResult(
                task_type=spec["pipeline_tag"], task_name=spec["task_name"], dataset_split="validation",
                metric_type=metric, metric_name=pretty, metric_value=round(value, 4), **dataset_meta))
    card_data = ModelCardData(
        language=language, license=license, library_name="transformers", base_model=base_id,
        datasets=[dataset_name] if dataset_name else None, tags=list(spec["tags"]),
        pipeline_tag=spec["pipeline_tag"], model_name=repo_id, eval_results=eval_results or None,
    )

    if base_id:
        origin = f"a fine-tuned version of [{base_id}](https://huggingface.co/{base_id})"
    elif model_name_or_path:
        origin = "fine-tuned from a local checkpoint (no Hub id was recorded for it)"
    else:
        origin = "a model trained from scratch" + (f" (architecture from `{public_path(config_name)}`)" if config_name else "")
    data_text = (f"[{dataset_name}](https://huggingface.co/datasets/{dataset_name})"
                 + (f" (`{dataset_config}`)" if dataset_config else "")) if dataset_name else "local data files"
    results = "\n".join(f"- {r.metric_name}: {r.metric_value:.4f}" for r in eval_results) or "- (no evaluation was run)"

    sections = [
        f"---\n{card_data.to_yaml()}\n---",
        f"{CARD_MARKER}; repo_id: {repo_id} -->",
        f"# {repo_id.split('/')[-1]}",
        f"This model is {origin}, for {spec['task_name'].lower()} on {data_text}.",
        f"It achieves the following results on the evaluation set:\n\n{results}",
        f"## How to use\n\n```python\n{usage_snippet(task, repo_id)}\n```",
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
    sections.append(f"## Framework versions\n\n{framework_versions()}")
    return "\n\n".join(sections) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Push


def is_our_card(path):
    try:
        return CARD_MARKER in Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def card_path(output_dir, retry=""):
    """Where our card goes: README.md, unless the user put their own README.md there (nothing the user had is ever
    overwritten); then MODEL_CARD.md. A card we wrote earlier is replaced."""
    for name in ("README.md", CARD_FALLBACK):
        path = Path(output_dir) / name
        if not path.exists() or is_our_card(path):
            return path
    raise PushError(f"{output_dir} holds your own README.md and {CARD_FALLBACK}, which are never overwritten, so the "
                    f"model card has no place; rename {CARD_FALLBACK}, then retry" + (f": {retry}" if retry else ""))


def write_card(output_dir, card, retry=""):
    """Writes our card where card_path says and returns that path. Written before the push, so a retry pushes the
    very same card."""
    path = card_path(output_dir, retry)
    atomic_write_text(path, card)
    if path.name != "README.md":
        print(f"{Path(output_dir) / 'README.md'} was not written by this project: it is left as is and not pushed; "
              f"the model card, pushed as the repo's README.md, is in {path}", file=sys.stderr)
    return path


def retry_command(output_dir, repo_id, private=False, revision=None):
    parts = ["python", "push_to_hub.py", shlex.quote(str(output_dir)), "--hub_model_id", shlex.quote(repo_id)]
    if private:
        parts.append("--hub_private_repo")
    if revision:
        parts += ["--hub_revision", shlex.quote(revision)]
    return " ".join(parts)


def describe_push_error(error, repo_id):
    """What went wrong, in one line a user can act on."""
    import importlib

    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    if isinstance(error, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE=1 is set, so nothing can be pushed; unset it"
    if isinstance(error, LocalTokenNotFoundError):
        return "no Hub token found; run `hf auth login`, set HF_TOKEN, or pass --hub_token"
    response = getattr(error, "response", None)
    if isinstance(error, HfHubHTTPError) and response is not None:
        status = response.status_code
        if status == 401:
            return ("the Hub rejected the token (401 Unauthorized); run `hf auth login` or set HF_TOKEN to a valid "
                    "token with write access")
        if status == 403:
            return (f"no write access to {repo_id} (403 Forbidden): the name belongs to another user or organization, "
                    "or the token is read-only; choose another --hub_model_id or use a write token")
        if status == 409:
            return f"the repository name {repo_id} is taken (409 Conflict); choose another --hub_model_id"
        if status == 404:
            return f"{repo_id} or its revision was not found on the Hub (404)"
        if status >= 500:
            return f"the Hub answered {status} (server error); try again in a few minutes"
        return f"the Hub answered {status}"
    transport_errors = [ConnectionError, TimeoutError]
    for http_client in ("httpx2", "httpx"):  # huggingface_hub 2.x uses httpx2, 1.x httpx
        try:
            transport_errors.append(importlib.import_module(http_client).TransportError)
        except ImportError:
            pass
    if isinstance(error, tuple(transport_errors)):
        return f"could not reach the Hub at {constants.ENDPOINT} (no network?)"
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}"


def upload_output_dir(output_dir, repo_id, token=None, private=False, revision=None, commit_message=None,
                      tokens_to_hide=(), card=None):
    """Creates the repo if needed and uploads the output folder, with `card` (the path write_card returned) as the
    repo's README.md. Returns the commit URL. On failure raises PushError with the retry command; nothing in
    output_dir is changed."""
    from huggingface_hub import HfApi

    api = HfApi(token=token or None)
    hidden = set(tokens_to_hide) | ({token} if token else set()) | known_tokens()
    retry = retry_command(output_dir, repo_id, private, revision)
    step = "checking the Hub token"
    try:
        user = api.whoami()["name"]  # fails fast with a clear 401 before anything is created
        step = f"creating the repository {repo_id}"
        repo_id = api.create_repo(repo_id, private=bool(private), exist_ok=True).repo_id
        step = f"uploading {output_dir} to {repo_id}"
        # The user's own README.md stays local: our card goes up as README.md, in a commit of its own (a folder
        # upload cannot rename a file).
        separate_card = card is not None and Path(card).name != "README.md"
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=str(output_dir), revision=revision,
            ignore_patterns=IGNORE_PATTERNS + (["README.md", Path(card).name] if separate_card else []),
            commit_message=commit_message or "Upload fine-tuned model",
        )
        if separate_card:
            step = f"uploading the model card {card} to {repo_id}"
            commit = api.upload_file(path_or_fileobj=str(card), path_in_repo="README.md", repo_id=repo_id,
                                     revision=revision, commit_message="Upload model card")
    except Exception as error:
        message = (f"push to the Hub failed while {step}: {describe_push_error(error, repo_id)}. The trained model is "
                   f"intact in {output_dir}; retry without retraining: {retry}")
        raise PushError(scrub_tokens(message, hidden)) from None
    print(f"Pushed {output_dir} to {commit.commit_url} as {user}; load it with "
          f"pipeline(..., model=\"{repo_id}\")", file=sys.stderr)
    return commit.commit_url


def check_no_token_in_files(output_dir, tokens, retry=""):
    """Refuses to publish a file that holds a token (a pickled training_args.bin with --hub_token, say)."""
    for path in Path(output_dir).iterdir():
        if not path.is_file() or path.suffix in (".safetensors", ".bin") and path.name != "training_args.bin":
            continue
        data = path.read_bytes()
        for token in tokens:
            if token.encode() in data:
                raise PushError(f"{path} contains your Hub token, so it was not pushed; re-save it without the token "
                                "(TrainingArguments must not pickle hub_token), then retry" + (f": {retry}" if retry else ""))


def run_card(training_args, task, model_args=None, data_args=None, metrics=None, argv=None, license=None,
             language="en", download=True):
    """(repo_id, card text) of a finished run, for training_args.hub_model_id (or the output folder's name), with
    no token in it. download: the base model's license may be read from the Hub (else only from local files)."""
    output_dir = Path(training_args.output_dir)
    repo_id = training_args.hub_model_id or output_dir.resolve().name
    card = build_model_card(
        output_dir, repo_id, task,
        model_name_or_path=getattr(model_args, "model_name_or_path", None),
        config_name=getattr(model_args, "config_name", None),
        model_revision=getattr(model_args, "model_revision", None),
        metrics=metrics, training_args=training_args, data_args=data_args, argv=argv,
        license=license, language=language, download=download,
    )
    return repo_id, scrub_tokens(card, known_tokens(training_args))


def save_model_card(training_args, task, **card_args):
    """A run without --push_to_hub still gets its card (as the transformers examples write theirs), so that
    push_to_hub.py later pushes the full card: base model, hyper-parameters, results, the command."""
    _, card = run_card(training_args, task, download=False, **card_args)  # no network: a run may be offline
    try:
        path = write_card(training_args.output_dir, card)
    except InputError as error:  # the user's own README.md and MODEL_CARD.md: no place, not worth failing the run
        logger.warning("No model card written: %s", error)
        return None
    logger.info("Model card written to %s", path)
    return path


def push_output_dir(training_args, task, model_args=None, data_args=None, metrics=None, argv=None,
                    license=None, language="en"):
    """Writes the model card into training_args.output_dir and pushes the folder to training_args.hub_model_id.
    Call it on the main process once the model, tokenizer, metrics and trainer state are saved."""
    if not getattr(training_args, "should_save", True):
        return None  # only the main process pushes
    output_dir = Path(training_args.output_dir)
    private = bool(getattr(training_args, "hub_private_repo", False))
    revision = getattr(training_args, "hub_revision", None)
    tokens = known_tokens(training_args)
    repo_id, card = run_card(training_args, task, model_args=model_args, data_args=data_args, metrics=metrics,
                             argv=argv, license=license, language=language)
    retry = retry_command(output_dir, repo_id, private, revision)
    card_file = write_card(output_dir, card, retry)
    check_no_token_in_files(output_dir, tokens, retry)
    return upload_output_dir(output_dir, repo_id, token=training_args.hub_token, private=private, revision=revision,
                             tokens_to_hide=tokens, card=card_file)
