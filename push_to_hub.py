"""Push a finished output folder to the Hub without retraining (the retry after a failed push, or a first push of a
run trained without --push_to_hub).

    python push_to_hub.py OUTPUT_DIR --hub_model_id you/bert-base-cased-sst2 [--hub_private_repo]

The token comes from --hub_token, HF_TOKEN or `hf auth login`. The model card the training run wrote is pushed as
is (with the repo id updated if you push under another name); a folder without one gets a card built from its
config, results and trainer state. A README.md this project did not write is yours: it is kept as is and not pushed,
and the card goes in MODEL_CARD.md (pushed as the repo's README.md).
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from finetune.card import CARD_MARKERS, base_model_license, build_model_card
from finetune.cli import (bool_argument, check_command_line_text, raise_input_errors, redact_secrets, run_main,
                          secret_values)
from finetune.errors import InputError, known_tokens, scrub, this_run
from finetune.runs import CHECKPOINT_NAME
from finetune.hub import card_path, check_no_token_in_files, upload_output_dir, write_card
from finetune.tasks import TASKS, card_of_folder

CHECKPOINT_STATE = ("optimizer.pt", "scheduler.pt", "rng_state.pth")  # what a checkpoint holds beside the model
TASK_CARDS = {name: card for task in TASKS for name, card in task.named_cards().items()}


def folder_card(output_dir):
    """The task's card part, from the saved config (its labels, its task) and results."""
    try:
        config = json.loads((output_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict):
        raise InputError(f"{output_dir / 'config.json'} cannot be read as a model config; give the --output_dir of "
                         "a completed run, or name the task with --task")
    card = card_of_folder(output_dir)
    if card is None:
        raise InputError(f"{output_dir / 'config.json'}: not a model config of a task these recipes train (text "
                         "classification, question answering); give the --output_dir of a completed run, or name "
                         "the task with --task")
    return card


def renamed_card(card, old_id, new_id):
    """The card with the repo id replaced where the card builder puts it (the marker, the model name in the metadata,
    the usage snippet, the reproduce command; the title holds its last part) and nowhere else: a card written without a
    push names the output folder ("out", "model"), which may also be a word of the text or the end of a path."""
    old = re.escape(old_id)
    places = [(rf"(; repo_id: )({old})( -->)", new_id),  # the marker
              (rf"(?m)^((?:- name|model_name): ['\"]?)({old})(['\"]?)$", new_id),  # metadata
              (rf'((?:\(|model=)")({old})(")', new_id),  # from_pretrained("...") / pipeline(..., model="...")
              (rf"(--hub_model_id '?)({old})('?(?:\s|$))", new_id),  # the reproduce command
              (rf"(?m)^(# )({re.escape(old_id.split('/')[-1])})()$", new_id.split("/")[-1])]  # the title
    for pattern, replacement in places:
        card = re.sub(pattern, lambda match: match.group(1) + replacement + match.group(3), card)
    return card


def with_base_model_license(card):
    """A card written at the end of a run without --push_to_hub did not ask the Hub for the base model's license
    (the run may be offline): ask now, before publishing."""
    metadata = yaml.safe_load(card.split("---")[1]) if card.startswith("---") else None
    if not isinstance(metadata, dict) or metadata.get("license") or not metadata.get("base_model"):
        return card
    base = metadata["base_model"]
    license_ = base_model_license(None, base[0] if isinstance(base, list) else base)
    return card.replace("---\n", f"---\nlicense: {license_}\n", 1) if license_ else card


def card_for(output_dir, repo_id, task):
    path = card_path(output_dir)
    if path.exists():  # card_path only gives a file that is missing or a card we wrote
        card = path.read_text(encoding="utf-8")
        old_id = re.search("(?:" + "|".join(map(re.escape, CARD_MARKERS)) + r"); repo_id: (\S+) -->", card)
        if old_id and old_id.group(1) != repo_id:
            card = renamed_card(card, old_id.group(1), repo_id)
        return with_base_model_license(card)
    return build_model_card(output_dir, repo_id, TASK_CARDS[task] if task else folder_card(output_dir))


def check_not_a_checkpoint(output_dir):
    """A checkpoint holds the optimizer and RNG state of a run in progress: pushing it would publish them, and write
    a card into the checkpoint."""
    training_state = [name for name in CHECKPOINT_STATE if (output_dir / name).exists()]
    if CHECKPOINT_NAME.fullmatch(output_dir.resolve().name) or training_state:
        held = f" (it holds {', '.join(training_state)})" if training_state else ""
        raise InputError(f"{output_dir} is a checkpoint of a run{held}, not a finished output folder; push the "
                         f"run's folder ({output_dir.resolve().parent}) once it has finished, or copy the "
                         "checkpoint's model, config and tokenizer files into a new folder and push that")


def check_repo_id(repo_id, given):
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        named = "--hub_model_id" if given else "the folder's name (the default --hub_model_id)"
        reason = re.sub(r"(: '.*')?\.?( Use `repo_type`.*)?$", "", " ".join(str(error).split()))
        raise InputError(f"{named} {repo_id!r} is not a valid Hub repository id ({reason}); give --hub_model_id "
                         "as name or org/name") from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="a finished output folder (model, config, tokenizer, results)")
    parser.add_argument("--hub_model_id", help="org/name or name (default: the folder's name in your namespace)")
    bool_argument(parser, "--hub_private_repo", help="create the repository as private (bare, or true/false)")
    parser.add_argument("--hub_token", help="write token (default: HF_TOKEN or the `hf auth login` token)")
    parser.add_argument("--hub_revision", help="branch to push to (default: main)")
    parser.add_argument("--task", choices=sorted(TASK_CARDS), help="default: inferred from the folder")
    argv = sys.argv[1:] if argv is None else list(argv)
    this_run["secrets"] |= secret_values(argv)
    check_command_line_text(argv)
    raise_input_errors(parser)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        raise InputError(f"unknown command-line argument(s) {' '.join(redact_secrets(unknown))}; see --help for the "
                         "accepted flags")

    output_dir = Path(args.output_dir)
    check_not_a_checkpoint(output_dir)
    if not (output_dir / "config.json").is_file():
        raise InputError(f"{output_dir}: no config.json, so this is not a finished output folder; give the "
                         "--output_dir of a completed training run")
    if not any(output_dir.glob("*.safetensors")) and not (output_dir / "pytorch_model.bin").exists():
        raise InputError(f"{output_dir}: no model weights (*.safetensors); give the --output_dir of a completed run")
    repo_id = args.hub_model_id or output_dir.resolve().name
    check_repo_id(repo_id, args.hub_model_id)  # before the card in the folder is rewritten with it
    tokens = known_tokens() | ({args.hub_token} if args.hub_token else set())
    card = write_card(output_dir, scrub(card_for(output_dir, repo_id, args.task), tokens))
    check_no_token_in_files(output_dir, tokens)
    upload_output_dir(output_dir, repo_id, token=args.hub_token, private=args.hub_private_repo,
                      revision=args.hub_revision, tokens_to_hide=tokens, card=card)


if __name__ == "__main__":
    run_main(main)
