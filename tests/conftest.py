"""Every test runs offline: the Hub is unreachable here, and without these variables a failing Hub lookup retries
for up to a minute. HF_HOME is a throwaway folder so no test reads or writes the user's cache."""

import html.parser
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hub_server import HubServer
from script_server import ScriptServer, import_time_key

REPO_DIR = Path(__file__).resolve().parent.parent
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_HOME": tempfile.mkdtemp(prefix="test-hf-home-"),
    "TOKENIZERS_PARALLELISM": "false",
    "DISABLE_MLFLOW_INTEGRATION": "TRUE",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # One torch thread in every test process: the tiny model trains faster on one, and two threads on a busy 2-core
    # machine wait on each other (a 2-epoch run took 5 s or 30 s depending on what else ran).
    "OMP_NUM_THREADS": "1",
}
os.environ.update(OFFLINE_ENV)  # before transformers / huggingface_hub are imported by any test module
sys.path.insert(0, str(REPO_DIR))

TINY_MODEL = ["--config_name", str(REPO_DIR / "assets/tiny-bert"), "--tokenizer_name", str(REPO_DIR / "assets/tiny-bert")]
SAMPLE_DIR = REPO_DIR / "data" / "sample"


def saved_tiny_model(folder, auto_class_name, tokenizer=True, **config_changes):
    """A folder holding an untrained tiny model (transformers' `auto_class_name`) with weights for every layer, and its
    tokenizer: what evaluating a trained model reads, made in a tenth of a second."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(REPO_DIR / "assets/tiny-bert", **config_changes)
    transformers.set_seed(0)
    getattr(transformers, auto_class_name).from_config(config).save_pretrained(folder)
    if tokenizer:
        transformers.AutoTokenizer.from_pretrained(REPO_DIR / "assets/tiny-bert").save_pretrained(folder)
    return folder


def _unused_port():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return unused.getsockname()[1]


# Online mode with a Hub address nothing listens on: no network. One address for the session, so that the runs
# that use it share a script server.
NO_NETWORK_ENV = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{_unused_port()}"}


def run_script(script, *args, env=None, cwd=REPO_DIR, timeout=300, new_interpreter=False):
    """Runs one of the repository's scripts as `python SCRIPT ARGS` in a process of its own, with os.environ updated
    by `env`; returns the CompletedProcess. The process is forked from a script server that has done the imports
    (see script_server.py) unless new_interpreter is set (a test of the start-up itself)."""
    if new_interpreter:
        return subprocess.run([sys.executable, str(REPO_DIR / script), *map(str, args)], cwd=cwd,
                               env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    return run_python(REPO_DIR / script, *args, env=env, cwd=cwd, timeout=timeout)


def run_python(*argv, env=None, cwd=REPO_DIR, timeout=300):
    """`python ARGV` (a script and its arguments, -c CODE ... or -m MODULE ...) in a forked process; returns the
    CompletedProcess."""
    return script_server(env).run(argv, {**os.environ, **(env or {})}, cwd, timeout)


def start_python(*argv, env=None, cwd=REPO_DIR, stdout=None):
    """`python ARGV` forked and left running, as subprocess.Popen starts it: returns a Popen-like ForkedRun."""
    return script_server(env).start(argv, {**os.environ, **(env or {})}, cwd, stdout)


SESSION_ENV = dict(os.environ)
_script_servers = {}


def script_server(env):
    """The script server whose imports ran with the session's environment and a test's `env` on top (one per such
    environment, kept for the session: starting one costs what a fresh interpreter's imports cost). Variables that
    libraries set in this process later on (KMP_DUPLICATE_LIB_OK, ...) reach a run, not the server's imports."""
    key = import_time_key(env or {})
    if key not in _script_servers:
        _script_servers[key] = ScriptServer({**SESSION_ENV, **dict(key)})
    return _script_servers[key]


_loopback_hubs = []


def loopback_hub():
    """The session's Hub-compatible server on 127.0.0.1 (hub_server.py), started on first use."""
    if not _loopback_hubs:
        _loopback_hubs.append(HubServer().start())
    return _loopback_hubs[0]


def hub_env(hub, **extra):
    """The variables of a run that talks to `hub` with its user's token."""
    return {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HUB_OFFLINE": "0", **extra}


@pytest.fixture(scope="session")
def hub():
    return loopback_hub()


@pytest.fixture(scope="session")
def no_network_env():
    return dict(NO_NETWORK_ENV)


def pytest_sessionstart(session):
    script_server(None)  # the offline runs' server: its imports overlap with the collection of the tests


def pytest_collection_finish(session):
    """Starts the script servers of the Hub and of no network if a selected test uses them: their imports then
    overlap with the tests that come first."""
    fixtures = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    if "hub" in fixtures:
        script_server(hub_env(loopback_hub()))
    if "no_network_env" in fixtures:
        script_server(NO_NETWORK_ENV)


def pytest_sessionfinish(session):
    while _script_servers:
        _script_servers.popitem()[1].close()
    while _loopback_hubs:
        _loopback_hubs.pop().stop()


def run_main_in_process(module, argv, capsys):
    """A script's main() as the command line runs it (through finetune.cli.run_main), without the cost of a new Python
    process: returns (exit code, stderr)."""
    code, _, err = run_main_with_output(module, argv, capsys)
    return code, err


def run_main_with_output(module, argv, capsys):
    """run_main_in_process, returning (exit code, stdout, stderr)."""
    import finetune.cli
    import finetune.runs

    try:
        finetune.cli.run_main(lambda: module.main([str(a) for a in argv]))
        code = 0
    except SystemExit as stop:
        code = stop.code
    finetune.runs.release_all()  # what the end of the script's process does: unlock its output folder
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def repo_dir():
    return REPO_DIR


def report_data(page):
    """The data a finetune.report page embeds (its <script type="application/json">), as Python objects."""
    parser = ReportDataParser()
    parser.feed(page)
    assert len(parser.found) == 1, "a report page embeds its data exactly once"
    return json.loads(parser.found[0])


class ReportDataParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.found, self.inside = [], False

    def handle_starttag(self, tag, attrs):
        self.inside = tag == "script" and ("type", "application/json") in attrs
        if self.inside:
            self.found.append("")

    def handle_endtag(self, tag):
        self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.found[-1] += data
