"""The command line: `[recipe.yaml] [--key value ...]` parsed into the scripts' argument dataclasses, one error line
instead of a traceback for bad input, secrets kept out of every message, and the per-phase wall-time line."""

import argparse
import errno
import json
import logging
import math
import os
import re
import sys
import time
import traceback
import warnings

import torch
import transformers
import yaml
from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

from finetune.errors import HUB_TOKEN, REDACTED, InputError, scrub, this_run
from finetune.runs import is_complete_checkpoint, run_checkpoints

logger = logging.getLogger(__name__)
RECIPE_SUFFIXES = (".yaml", ".yml", ".json")
TOKEN_FLAGS = ("--hub_token", "--token")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def run_main(main):
    """Runs a script's main(); bad input and a full disk end with one error line and exit code 2 instead of a
    traceback. Every message printed here goes through scrub: a token must not reach a terminal or a CI log
    whatever path the error took."""
    this_run.update(secrets=secret_values(sys.argv[1:]), output_dir=None)
    try:
        main()
    except InputError as error:
        fail_with("input error", str(error))
    except ImportError as error:  # an optional package a flag needs (--optim adamw_bnb_8bit, --use_liger_kernel, ...)
        fail_with("missing package", f"a package this run needs is missing: {str(error).strip().splitlines()[0]}")
    except Exception as error:
        full = disk_full_error(error)
        if full is None:  # a bug, not the user's input: the traceback stays, the tokens do not
            print(scrub(traceback.format_exc()), end="", file=sys.stderr)
            sys.exit(1)
        fail_with("disk full", disk_full_message(full))
    leave_process_group()


def fail_with(kind, message):
    """The error line, printed last and on a line of its own, whatever was printed before."""
    logger.debug("%s:\n%s", kind, scrub(traceback.format_exc()))
    left_on_line = end_progress_bars()
    sys.stdout.flush()  # what the run printed comes before the error, not after it (one terminal, two streams)
    print(f"{chr(10) if left_on_line else ''}error: {scrub(message)}", file=sys.stderr, flush=True)
    sys.exit(2)


# What torch.save (its zip writer) and safetensors (a Rust io::Error) say when a write fails for want of space: they
# raise no OSError, so the errno is lost
WRITE_FAILED = re.compile(r"PytorchStreamWriter failed writing|file write failed|unexpected pos \d+|StorageFull|"
                          r"No space left on device|code: (28|122)\b")


def end_progress_bars():
    """Closes the progress bars a stopped loop left open. Such a bar ends its line without a newline, and would
    print itself once more when closed at exit: after the error line. Closing a bar that is kept (leave=True) ends its
    line; one that is not only clears it in a terminal: True when a line may still hold a bar's text."""
    from tqdm import tqdm

    left_on_line = False
    for bar in sorted(tqdm._instances, key=lambda bar: -abs(getattr(bar, "pos", 0))):  # the innermost first
        left_on_line |= not bar.leave
        try:
            bar.close()
        except Exception:  # a bar whose stream is gone: nothing more of it can be printed either
            pass
    return left_on_line


def disk_full_error(error):
    """The OSError ENOSPC / EDQUOT behind `error` (raised as it is, or as the cause of another), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            return error
        if not isinstance(error, OSError) and WRITE_FAILED.search(str(error)):
            return OSError(errno.ENOSPC, "No space left on device")
        error = error.__cause__ or error.__context__
    return None


def disk_full_message(error):
    """What was kept and what to do, in one line. Files are written atomically and a checkpoint counts once it is
    complete (finetune.runs.is_complete_checkpoint), so what is complete stays complete."""
    written = f" while writing {error.filename}" if error.filename else ""
    message = ("the disk is full" if error.errno == errno.ENOSPC else "the disk quota is used up") + written
    output_dir = this_run["output_dir"]
    if output_dir:
        complete = [p.name for p in run_checkpoints(output_dir) if is_complete_checkpoint(p)]
        checkpoint = complete[-1] if complete else None
        kept = (f"the last complete checkpoint in {output_dir} is kept ({checkpoint})" if checkpoint
                else f"the files already complete in {output_dir} are kept")
        message += f"; {kept}"
    return message + "; free space and rerun the same command"


def leave_process_group():
    """Under torchrun / accelerate launch: wait for every process, then close the process group. Without it, a process
    whose peer already exited sometimes aborts at exit ("terminate called without an active exception", exit -6)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


class PhaseClock:
    """Wall-clock seconds of each phase of a run, the first counted from the process's start (Python start-up,
    imports, argument parsing), for one line at the end: where a whole run's time goes besides training."""

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


USAGE = "%(prog)s [RECIPE.yaml] [--key value ...]"
DESCRIPTION = """RECIPE.yaml, a file under recipes/, gives the run's settings (a flat mapping of flag names to
values); any --key value after it overrides the recipe's, and the flags alone work without a recipe. An empty
value (--key "") unsets a recipe's key: the flag's default below applies. Boolean flags work bare (--bf16) or with
a value (--bf16 false). The flag names are those of the transformers examples and of TrainingArguments."""
# Flags of the transformers examples (run_glue.py, run_qa.py) that this project names otherwise or has no use for:
# flag -> what to do instead, the one line a user gets for it.
EXAMPLE_FLAGS = {
    "token": "give the token in HF_TOKEN or with `hf auth login` (downloads and pushes read it there), or pass "
             "--hub_token for the push",
    "use_auth_token": "give the token in HF_TOKEN or with `hf auth login`, or pass --hub_token for the push",
    "evaluation_strategy": "its name is --eval_strategy",
    "use_fast_tokenizer": "a fast tokenizer is always used (the answer positions need its offsets); drop the flag",
}
# Flags of the examples that ask for what every run here does anyway: taken, with or without a value, and ignored.
EXAMPLE_FLAGS_ALWAYS_ON = {"overwrite_cache": "nothing is cached: the data is tokenized afresh, in memory, every run"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help as HfArgumentParser writes it (each flag's default), with the description's lines kept as written."""


def parse_args(dataclass_types, argv=None):
    """Parses `[recipe.yaml] [--key value ...]`: the recipe file's keys first, command-line flags override them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    check_command_line_text(argv)
    parser = HfArgumentParser(dataclass_types, allow_abbrev=False,  # --learning_rat must not pass for --learning_rate
                              usage=USAGE, description=DESCRIPTION, epilog=example_flags_help(),
                              formatter_class=HelpFormatter)
    accept_bare_booleans(parser)
    actions = {option: action for action in parser._actions for option in action.option_strings}
    this_run["secrets"] |= secret_values(argv)
    argv = without_example_flags(argv, actions)
    argv, unset = without_empty_values(argv, actions)
    recipe_args, where = [], "the command line"
    if argv and not argv[0].startswith("-"):
        where = f"recipe file {argv[0]} or the command line"
        recipe_args = recipe_to_flags(argv.pop(0), actions={a.dest: a for a in parser._actions}, unset=unset)

    this_run["secrets"] |= secret_values(recipe_args)
    raise_input_errors(parser, where)
    for action in parser._actions:
        if action.type is float:
            action.type = finite_float
    try:
        parsed = parser.parse_args_into_dataclasses(args=recipe_args + argv, return_remaining_strings=True)
    except ValueError as error:  # TrainingArguments' own checks, e.g. --bf16 true on a machine without support
        message = " ".join(str(error).split())
        if re.search(r"bf16|tf32", message, re.IGNORECASE):
            message += (" (tf32 needs a GPU of the Ampere generation or newer, bf16 such a GPU or a CPU: leave "
                        "--bf16 and --tf32 out to have them chosen for this machine, or set them false)")
        raise InputError(f"the arguments do not fit together or this machine: {message}") from None
    *arguments, unknown = parsed
    this_run["output_dir"] = next((a.output_dir for a in arguments if hasattr(a, "output_dir")), None)
    if unknown:
        raise InputError(f"unknown command-line argument(s) {' '.join(redact_secrets(unknown))}; "
                         "see --help for the accepted flags")
    for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
        limits = [getattr(a, name) for a in arguments if getattr(a, name, None) is not None]
        if limits and limits[0] < 1:
            raise InputError(f"--{name} must be at least 1 (got {limits[0]}); leave it out to use every row")
    return tuple(arguments)


def bool_argument(parser, *names, default=False, **kwargs):
    """A boolean flag as the transformers examples take them: bare (--flag) is true, or a value (--flag false)."""
    return parser.add_argument(*names, type=string_to_bool, nargs="?", const=True, default=default, **kwargs)


def accept_bare_booleans(parser):
    """HfArgumentParser gives a bool field a bare form only when its default is a bool: a field whose default is None
    (chosen later, as the speed settings are) would need a value (`--bf16` alone: "expected one argument")."""
    for action in parser._actions:
        if action.type is string_to_bool and action.nargs is None:
            action.nargs, action.const = "?", True


def example_flags_help():
    lines = [f"--{flag}: {reason}" for flag, reason in {**EXAMPLE_FLAGS_ALWAYS_ON, **EXAMPLE_FLAGS}.items()]
    return "flags of the transformers examples that differ here:\n  " + "\n  ".join(lines)


def without_example_flags(argv, actions=()):
    """argv without the examples' flags that every run here obeys anyway; an InputError naming ours for the others.
    A flag the script defines itself (`actions`) is its own."""
    kept, skip_value = [], False
    for arg in argv:
        name = arg.partition("=")[0].removeprefix("--").replace("-", "_")
        if skip_value and is_bool_word(arg):
            skip_value = False
            continue
        skip_value = False
        if arg.startswith("--") and name in EXAMPLE_FLAGS and f"--{name}" not in actions:
            raise InputError(f"--{name} is a flag of the transformers examples, not of this script: "
                             f"{EXAMPLE_FLAGS[name]}")
        if arg.startswith("--") and name in EXAMPLE_FLAGS_ALWAYS_ON:
            skip_value = "=" not in arg
            continue
        kept.append(arg)
    return kept


def is_bool_word(word):
    try:
        string_to_bool(word)
        return True
    except argparse.ArgumentTypeError:
        return False


def without_empty_values(argv, actions):
    """(argv, names): `--key ""` (or `--key=`) of a flag that takes a number, a boolean or a choice unsets the key:
    the pair and the same flag given earlier are dropped, and the recipe's value of it is skipped, so the field's
    default applies. A text flag keeps its empty value (the scripts read an empty path as none given)."""
    kept, unset = [], set()
    i = 0
    while i < len(argv):
        flag, equals, value = argv[i].partition("=")
        action = actions.get(flag) if flag.startswith("--") else None
        takes_value = action is not None and action.nargs in (None, "?")
        empty = takes_value and (equals and value == "" or not equals and i + 1 < len(argv) and argv[i + 1] == "")
        if empty and action.type not in (str, None):
            unset.add(action.dest)
            kept = drop_flag(kept, action)
            i += 1 if equals else 2
            continue
        kept.append(argv[i])
        i += 1
    return kept, unset


def drop_flag(args, action):
    """args without the occurrences of `action`'s flag given before, each with its value."""
    kept, i = [], 0
    while i < len(args):
        flag, equals, _ = args[i].partition("=")
        if flag in action.option_strings:
            has_value = not equals and i + 1 < len(args) and not args[i + 1].startswith("--")
            i += 2 if has_value else 1
            continue
        kept.append(args[i])
        i += 1
    return kept


def check_command_line_text(args):
    """Bytes that are not UTF-8 reach Python as surrogate escapes, which fail wherever the text is written (a card, a
    results file, a tokenizer): refused here, naming the flag (never the value: it may be a token's)."""
    for position, (arg, safe) in enumerate(zip(args, redact_secrets(args))):
        try:
            arg.encode("utf-8")
            continue
        except UnicodeEncodeError as error:
            byte = arg[error.start].encode("utf-8", "surrogateescape").hex()
        flag = safe.partition("=")[0] if safe.startswith("-") else (
            args[position - 1] if position and args[position - 1].startswith("-") else None)
        what = (f"the value of {readable(flag)}" if flag and flag != safe else
                f"the flag {readable(flag)}" if flag else f"argument {position + 1}")
        raise InputError(f"{what} is not UTF-8 text (byte {byte}); retype it in a UTF-8 terminal (a file name: "
                         "rename the file)")


def readable(text):
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def raise_input_errors(parser, where="the command line"):
    """An argparse error as one InputError line: argparse's own way prints its whole usage text (~130 lines) above
    the message and exits."""
    def fail(message):
        raise InputError(f"{message}; fix the value in {where}")

    parser.error = fail


def finite_float(text):
    """argparse's float, without NaN and infinities: no float flag of ours means anything by them (a NaN learning
    rate trains on NaN weights, a NaN threshold never answers "no answer")."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


finite_float.__name__ = "float"  # argparse names the type in "invalid float value: 'abc'"


def is_secret_flag(word):
    """A flag that holds a token, misspelled ones too (--hub-tokn, --hubtoken, --tken); not --tokenizer_name or
    --include_num_input_tokens_seen, whose values appear in messages for good reason."""
    name = word.partition("=")[0].lower()
    return (name.startswith("-") and re.search(r"tok|tken|tkn|secret|passw", name) is not None
            and re.search(r"tokeniz|tokens[-_]", name) is None)


def redact_secrets(args):
    """Command-line words safe to print: the value of any token flag (misspelled ones too) and anything that looks
    like a Hub token are replaced, so a typo such as `--hub-tokn SECRET` never puts the token in a log."""
    safe, previous = [], ""
    for arg in args:
        key, equals, _ = arg.partition("=")
        secret_flag = equals and is_secret_flag(key)
        if HUB_TOKEN.search(arg) or is_secret_flag(previous):
            arg = f"{key}={REDACTED}" if secret_flag else REDACTED
        elif secret_flag:
            arg = f"{key}={REDACTED}"
        safe.append(arg)
        previous = arg if arg.startswith("-") and not equals else ""
    return safe


def secret_values(args):
    """The words redact_secrets hides (the value part of --flag=value), for scrub."""
    values = set()
    for arg, safe in zip(args, redact_secrets(args)):
        if safe == REDACTED:
            values.add(arg)
        elif safe.endswith(f"={REDACTED}"):
            values.add(arg.partition("=")[2])
    return {value for value in values if len(value) >= 4}


MAX_RECIPE_BYTES = 256 * 1024  # a recipe is a few hundred bytes; anything near this is not one
MAX_RECIPE_NODES = 10_000  # values after aliases (*name) are expanded: a bounded "billion laughs"


class RecipeLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice is an error (YAML keeps the last silently, so a second
    learning_rate line further down would quietly win), and that the document may hold at most MAX_RECIPE_NODES
    values once its aliases are expanded: nine lists of nine aliases to the one before are a few hundred bytes, and
    turning the last into flags would take more memory than the machine has."""

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            expanded_size(node, {}, set())
        return node

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({str(key) for key in keys if keys.count(key) > 1})
        if repeated:
            raise yaml.constructor.ConstructorError(None, None, f"key '{repeated[0]}' is given twice", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def expanded_size(node, sizes, open_nodes):
    """How many values `node` stands for with every alias expanded (each node counted once per reference; `sizes`
    remembers each node's, so a shared node costs one visit); a ConstructorError above MAX_RECIPE_NODES or for a
    value that holds itself."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise yaml.constructor.ConstructorError(None, None, "a value refers to itself (an alias inside its own "
                                                "anchor)", node.start_mark)
    open_nodes.add(id(node))
    children = node.value if isinstance(node.value, list) else []
    size = 1 + sum(expanded_size(part, sizes, open_nodes) for child in children
                   for part in (child if isinstance(child, tuple) else (child,)))
    open_nodes.discard(id(node))
    if size > MAX_RECIPE_NODES:
        raise yaml.constructor.ConstructorError(None, None, f"its aliases (*name) expand to more than "
                                                f"{MAX_RECIPE_NODES} values; a recipe is a flat mapping of flags",
                                                node.start_mark)
    sizes[id(node)] = size
    return size


def read_recipe(path):
    """The recipe file's text, refused above MAX_RECIPE_BYTES before it is read."""
    size = os.path.getsize(path)
    if size > MAX_RECIPE_BYTES:
        raise InputError(f"recipe file {path} is {size} bytes, more than a recipe holds (at most "
                         f"{MAX_RECIPE_BYTES // 1024} KiB); give a recipe file, a mapping of flag names to values")
    with open(path, encoding="utf-8") as f:
        return f.read(MAX_RECIPE_BYTES + 1)


def recipe_to_flags(path, actions, unset=()):
    """Turns a YAML/JSON recipe (a flat mapping of flag -> value) into command-line flags; the keys in `unset` (emptied
    on the command line) are left out."""
    if not path.endswith(RECIPE_SUFFIXES):
        raise InputError(f"{path}: a recipe file must end in .yaml, .yml or .json (flags start with --)")
    if not os.path.isfile(path):
        raise InputError(f"recipe file {path} not found; give the path to a file under recipes/")
    try:
        # YAML is a superset of JSON, so one loader reads both
        recipe = yaml.load(read_recipe(path), Loader=RecipeLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise InputError(f"recipe file {path} is not valid YAML/JSON: {str(error).splitlines()[0]}") from None
    except OSError as error:  # a folder named like a recipe, a file without read permission
        raise InputError(f"recipe file {path} cannot be read ({error.strerror or error})") from None
    except RecursionError:  # thousands of nested [ or {
        raise InputError(f"recipe file {path} nests its values too deeply; a recipe is a flat mapping of flag "
                         "names to values") from None
    if not isinstance(recipe, dict):
        raise InputError(f"recipe file {path} must be a mapping of flag names to values")
    flags = []
    for key, value in recipe.items():
        if key not in actions:
            raise InputError(f"recipe file {path}: unknown key '{key}'; fix the name or remove it (see --help)")
        if value is None or key in unset:
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
    """Log levels for this process, and the progress bars off with --disable_tqdm: the Trainer's own, datasets'
    (tokenization), transformers' (loading and writing weights) and huggingface_hub's (downloads, uploads)."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", handlers=[logging.StreamHandler()]
    )
    level = training_args.get_process_log_level()
    if not training_args.should_log and training_args.log_level_replica == "warning":
        # Under torchrun every process meets the same warnings: the main process prints them once. (The Trainer's
        # default for the other processes is "warning"; a --log_level_replica of the user's is kept.)
        level = logging.ERROR
        warnings.filterwarnings("ignore")
    for name in ("finetune", "__main__", "utils_qa"):
        logging.getLogger(name).setLevel(level)
    transformers.utils.logging.set_verbosity(level)
    if training_args.disable_tqdm:
        import datasets
        import huggingface_hub

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
        huggingface_hub.utils.disable_progress_bars()
    logging.getLogger("__main__").info("Training arguments: %s", training_args)
    if training_args.should_log:
        print(training_args.speed_summary())
