"""Publishing a finished output folder: its model card written where no file of the user's is overwritten, no file
with a token in it, what is pushed and what is not, and a failed push as one line with the command that retries it.

Our push, not Trainer.push_to_hub: the Trainer's card names the base model by whatever path was given (a local
folder path would leak into a public card) and has no usage snippet."""

import logging
import shlex
import sys
from pathlib import Path

from finetune.card import CARD_MARKERS, build_model_card
from finetune.errors import InputError, known_tokens, scrub
from finetune.outputs import atomic_write_text
from finetune.tasks import per_example_files

logger = logging.getLogger(__name__)
# Where our card is kept when the output folder holds a README.md we did not write (the user's own, never
# overwritten and not pushed); it is pushed as the repo's README.md.
CARD_FALLBACK = "MODEL_CARD.md"
# What is not pushed: checkpoints (the Trainer pushes those itself with --hub_strategy checkpoint), TensorBoard
# runs, temp files, and the per-example files of every task, which quote the user's own data (compare_runs.py's
# too, should its output be put in the folder).
IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/**", "runs/**", "**/runs/**", ".*", "**/.*", "*.tmp",
                   *per_example_files(), "disagreements.*"]


class PushError(InputError):
    """The push failed; the message says what failed and how to retry. Never contains a token."""


def is_our_card(path):
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(marker in text for marker in CARD_MARKERS)


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
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    if isinstance(error, OfflineModeIsEnabled) or constants.HF_HUB_OFFLINE:  # (offline, the token check fails first)
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
    if isinstance(error, (ConnectionError, TimeoutError, httpx2.TransportError)):  # huggingface_hub's HTTP client
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
        raise PushError(scrub(message, hidden)) from None
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
    return repo_id, scrub(card, known_tokens(training_args))


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
