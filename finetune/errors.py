"""The error a user can act on (InputError: one line, exit code 2) and the one scrubber that keeps tokens out of every
message, card and log. Standard library only, so that any module can import it without the command-line code."""

import os
import re

HUB_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")  # (not hf_sentiment_model, a repository name)
TOKEN_ENVIRONMENT = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
REDACTED = "<redacted>"
# What this process's command line told the error messages: the token values to hide, the output folder
this_run = {"secrets": set(), "output_dir": None}


class InputError(Exception):
    """A problem with what the user gave us, reported as one line: which file, which row, what to do."""


def known_tokens(training_args=None):
    """Every token this process could be using, so we can make sure none is ever written or printed."""
    tokens = {getattr(training_args, "hub_token", None), *map(os.environ.get, TOKEN_ENVIRONMENT)}
    try:
        from huggingface_hub import get_token

        tokens.add(get_token())
    except Exception:
        pass
    return {t for t in tokens if t and len(t) >= 4}


def scrub(text, tokens=()):
    """Text safe to print or publish: `tokens`, the token flags' values of this process's command line, the token
    variables' values, the saved login token, and anything shaped like a Hub token, replaced."""
    for secret in sorted(known_tokens() | this_run["secrets"] | set(tokens), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return HUB_TOKEN.sub(REDACTED, text)
