"""Every test runs offline: the Hub is unreachable here, and without these variables a failing Hub lookup retries
for up to a minute. HF_HOME is a throwaway folder so no test reads or writes the user's cache."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_HOME": tempfile.mkdtemp(prefix="test-hf-home-"),
    "TOKENIZERS_PARALLELISM": "false",
    "DISABLE_MLFLOW_INTEGRATION": "TRUE",
    # One torch thread in every test process: the tiny model trains faster on one, and two threads on a busy 2-core
    # machine wait on each other (a 2-epoch run took 5 s or 30 s depending on what else ran).
    "OMP_NUM_THREADS": "1",
}
os.environ.update(OFFLINE_ENV)  # before transformers / huggingface_hub are imported by any test module
sys.path.insert(0, str(REPO_DIR))

TINY_MODEL = ["--config_name", str(REPO_DIR / "assets/tiny-bert"), "--tokenizer_name", str(REPO_DIR / "assets/tiny-bert")]
SAMPLE_DIR = REPO_DIR / "data" / "sample"


def run_script(script, *args, env=None, cwd=REPO_DIR, timeout=300):
    """Runs one of the repository's scripts in a fresh Python process; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(REPO_DIR / script), *map(str, args)],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )


def run_main_in_process(module, argv, capsys):
    """A script's main() as the command line runs it (through finetune.cli.run_main), without the cost of a new Python
    process: returns (exit code, stderr)."""
    import finetune.cli

    try:
        finetune.cli.run_main(lambda: module.main([str(a) for a in argv]))
        code = 0
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


@pytest.fixture
def repo_dir():
    return REPO_DIR
