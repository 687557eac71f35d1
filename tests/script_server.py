"""Runs the repository's scripts as `python SCRIPT ARGS` (or `python -c CODE ARGS`, `python -m MODULE ARGS`) would,
each in a process forked from a server that has already imported torch, transformers and datasets: a run starts in
a tenth of a second instead of the five or more seconds those imports take.

A forked run is a process of its own (its own exit code, stdout, stderr and pid, killable), with the server's
imports done under the environment the server was started with: the variables read at import time (HF_ENDPOINT,
HF_HUB_OFFLINE, HF_HOME, ...) are the server's, so the client keeps one server per such environment. The run's own
environment (as subprocess.run(env=...) gives it) is set in the child before the script starts.

Protocol, one JSON line each way: {"argv", "cwd", "env", "stdout", "stderr"} in; {"pid"} once forked, then
{"returncode"} (negative: killed by that signal, as subprocess reports it) when the run ends."""

import atexit
import gc
import json
import os
import runpy
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
# Read when a script runs, not when it is imported: a server started without them serves runs that set them.
# (WATCH_DIR and WRITE_LOG: read by the workers that test_distributed.py launches.)
CALL_TIME_VARIABLES = ("HF_TOKEN", "HANG_AT_STEP", "WATCH_DIR", "WRITE_LOG")


class ScriptServer:
    """The client: a server process for one import-time environment, serving one run at a time."""

    def __init__(self, env):
        self.folder = Path(tempfile.mkdtemp(prefix="script-server-"))
        self.log = open(self.folder / "server.log", "w")
        self.process = subprocess.Popen([sys.executable, __file__], cwd=REPO_DIR, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, bufsize=0)
        self.replies, self.runs = b"", 0

    def start(self, argv, env, cwd=REPO_DIR, stdout=None):
        """Forks a run of `python ARGV` and returns it (a ForkedRun) at once. stdout=PATH sends stdout and stderr
        together to PATH, as stdout=file, stderr=STDOUT does for subprocess.Popen."""
        self.runs += 1
        out = Path(stdout) if stdout else self.folder / f"{self.runs}.out"
        err = None if stdout else self.folder / f"{self.runs}.err"
        for path in (out, err):
            if path:
                path.write_bytes(b"")  # there from the start, as a file given to subprocess.Popen is
        request = {"argv": [str(a) for a in argv], "cwd": str(cwd), "env": dict(env), "stdout": str(out),
                   "stderr": err and str(err)}
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        return ForkedRun(self, self.reply("pid"), argv, out, err)

    def run(self, argv, env, cwd=REPO_DIR, timeout=None):
        """As subprocess.run([sys.executable, *argv], env=env, cwd=cwd, capture_output=True, text=True) does."""
        process = self.start(argv, env, cwd)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        stdout, stderr = (path.read_text(errors="replace") for path in (process.stdout, process.stderr))
        process.stdout.unlink()
        process.stderr.unlink()
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def reply(self, key, timeout=None):
        """The next reply's value; None if none came within `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.replies:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.process.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.process.stdout.fileno(), 4096)
            if not chunk:
                self.log.flush()
                raise RuntimeError(f"the script server stopped: {(self.folder / 'server.log').read_text()[-3000:]}")
            self.replies += chunk
        line, self.replies = self.replies.split(b"\n", 1)
        return json.loads(line)[key]

    def close(self):
        """Stops the server at once (no run is in progress between runs), still importing or not."""
        self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class ForkedRun:
    """What subprocess.Popen offers that the tests use: pid, args, poll(), wait(timeout), kill(), returncode."""

    def __init__(self, server, pid, argv, stdout, stderr):
        self.server, self.pid, self.stdout, self.stderr = server, pid, stdout, stderr
        self.args = [sys.executable, *map(str, argv)]
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            self.returncode = self.server.reply("returncode", timeout=0)
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            self.returncode = self.server.reply("returncode", timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def kill(self):
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


def import_time_key(env):
    return tuple(sorted((name, value) for name, value in env.items() if name not in CALL_TIME_VARIABLES))


def serve():
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the imports print goes to the log, not into the replies
    sys.path[0] = str(REPO_DIR)  # not tests/: a run's sys.path is that of `python SCRIPT`
    import push_to_hub  # noqa: F401  (imports run_glue_sst2, run_squad, finetune, torch, transformers, datasets)

    # The libraries stay imported; the repository's own modules are imported again by each run, from the files as
    # they are then, as a new interpreter would.
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path.startswith(str(REPO_DIR)) and not path.startswith(sys.prefix):
            del sys.modules[name]
    gc.freeze()  # a run's garbage collections skip the imported objects, so their pages stay shared

    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_child(request, replies)  # never returns: the child exits as a Python process does
        replies.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")


def run_child(request, replies):
    """Runs the request in this forked child and ends it as Python ends a process: the exit code of sys.exit() or 1
    with the traceback, then non-daemon threads joined (a push still uploading), atexit handlers, streams flushed.
    What it skips is the teardown of the preloaded modules, a second of copy-on-write that changes nothing."""
    replies.close()
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(os.open(request["stdout"], os.O_WRONLY | os.O_APPEND), 1)
    os.dup2(os.open(request["stderr"], os.O_WRONLY | os.O_APPEND) if request["stderr"] else 1, 2)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    argv = request["argv"]
    code = 0
    try:
        if argv[0] == "-c":
            sys.argv, sys.path[0] = ["-c", *argv[2:]], ""
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        elif argv[0] == "-m":
            sys.argv, sys.path[0] = ["-m", *argv[2:]], os.getcwd()
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv, sys.path[0] = argv, os.path.dirname(os.path.abspath(argv[0]))
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    threading._shutdown()
    atexit._run_exitfuncs()
    gc.collect()  # finalizers of what is garbage now, such as a file object nobody closed
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    serve()
