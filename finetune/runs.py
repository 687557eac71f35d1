"""The output folder: who owns it, which of its checkpoints are complete, which one a rerun resumes and which ones
checkpoint rotation may delete. claim_output_dir() is called once a run's data is read and before anything is written;
it returns the checkpoint to resume from (None: start afresh). The rules:

- A folder a run reads (the model, config or tokenizer folder of a training run, or a data file) is never its
  --output_dir, nor inside it: the run would rewrite what it reads.
- One run at a time: the main process (rank 0 under torchrun / accelerate; the other ranks only read) holds a lock
  on .run.lock (with its process id and host) until it exits. A lock left by a killed run does not count: the
  operating system released it.
- A training run records what defines its result in .run.json (the model, the training data and the
  hyper-parameters that change the weights; not the speed settings, logging or evaluation batch size). Rerunning it
  resumes from its newest complete checkpoint only when the record matches; a finished run resumes from its last
  checkpoint with nothing left to train, or trains again from the start over its own files when it saved no
  checkpoint. A run whose settings differ is refused before it writes anything, naming the difference, unless the
  earlier run left nothing but what a run writes before its first checkpoint (it takes the folder over), or
  --overwrite_output_dir says to start over (the user's files are kept; the checkpoints the earlier run left are
  never resumed, and --save_total_limit may rotate them away, as the record says they are a run's of these scripts).
  A folder with checkpoints but no record is refused: which run wrote them cannot be told.
- An evaluation- or prediction-only run writes into a folder that is new, holds the model it evaluates, or whose
  record says its results are the same model's on the same data (claim_for_evaluation).
- Only the checkpoints the record lists (this run's) are resumed, each checked first (checkpoint_problem), or
  rotated away (keep_checkpoints).
"""

import atexit
import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import zipfile
from dataclasses import fields, is_dataclass
from pathlib import Path

import safetensors

try:
    import fcntl
except ImportError:  # Windows: the process id check alone
    fcntl = None

from finetune.errors import InputError
from finetune.outputs import FILE_MODE, atomic_write_json

logger = logging.getLogger(__name__)
FINGERPRINT_BYTES = 64 * 1024
MODEL_FLAGS = ("model_name_or_path", "config_name", "tokenizer_name")
DATA_FLAGS = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
# What changes the trained weights, besides the model and the data
TRAINING_SETTINGS = ("learning_rate", "num_train_epochs", "max_steps", "seed", "data_seed", "weight_decay",
                     "warmup_steps", "lr_scheduler_type", "lr_scheduler_kwargs", "adam_beta1", "adam_beta2",
                     "adam_epsilon", "max_grad_norm", "label_smoothing_factor", "train_sampling_strategy",
                     "load_best_model_at_end", "metric_for_best_model")
# ... recorded only when set, so that the record of a run without them stays what it was
OPTIONAL_SETTINGS = ("early_stopping_patience", "early_stopping_threshold")
# Data arguments that leave the trained weights as they are: speed, and what only evaluation or prediction reads
NOT_DEFINING = {"preprocessing_num_workers", "pad_to_max_length", "null_score_diff_threshold", "n_best_size",
                "max_answer_length", "max_predict_samples", "dataset_name", "dataset_config_name",
                *DATA_FLAGS.values()}
_held = {}  # output folder -> {fd, path, created (the folder), recorded (.run.json)}: this process's locks


# ---- Checkpoints: which are complete, which to resume, which rotation may delete


CHECKPOINT_NAME = re.compile(r"checkpoint-\d+")
RUN_RECORD, RUN_LOCK = ".run.json", ".run.lock"  # what defines the run that trains here, and who runs now


def written_before_first_checkpoint(name):
    """What a training run may write into --output_dir before its first checkpoint: its record and lock, TensorBoard
    runs, and the per-example files of its evaluations during training (each task names its own)."""
    from finetune.tasks import per_example_files  # (the tasks import the shared modules, this one among them)

    return name in ("runs", RUN_RECORD, RUN_LOCK) or any(fnmatch.fnmatchcase(name, p) for p in per_example_files())


MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
               "adapter_model.safetensors", "pytorch_model_fsdp_0")  # the last one: FSDP's sharded state dict folder


def checkpoint_problem(folder):
    """What makes a checkpoint unusable for resuming, or None. The Trainer writes trainer_state.json last, so a
    checkpoint without a readable one was cut off mid-write; each weights, optimizer, scheduler and RNG file there
    must read back too (a safetensors header that covers the file, a torch.save zip whose directory is intact):
    cheap checks that find a truncated or damaged file without loading it."""
    folder = Path(folder)
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return "no readable trainer_state.json (the run was cut off while saving)"
    if not any((folder / name).exists() for name in MODEL_FILES):
        return "no model weights"
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safetensors.safe_open(path, "pt"):
                pass
        except Exception as error:  # SafetensorError, OSError: a truncated or damaged file
            return f"{path.name} cannot be read ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
    for path in [*sorted(folder.glob("*.pt")), *sorted(folder.glob("*.pth")), *sorted(folder.glob("*.bin"))]:
        if path.name != "training_args.bin" and not zipfile.is_zipfile(path):
            return f"{path.name} is truncated or damaged"
    return None


def is_complete_checkpoint(folder):
    return checkpoint_problem(folder) is None


def run_checkpoints(output_dir):
    """The checkpoint-N folders the Trainer wrote into output_dir, oldest first."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and CHECKPOINT_NAME.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def check_checkpoint_rotation_is_safe(training_args, output_dir, checkpoints, recorded=False):
    """The Trainer's save_total_limit deletes the oldest `checkpoint-*` folders in output_dir whose *path* holds
    `checkpoint-<digits>` (transformers.trainer_utils.sort_checkpoints: in .../from-checkpoint-500/checkpoint-best the
    number comes from the parent's name): make sure none of them is a user's folder. Starting over
    (--overwrite_output_dir) may rotate away the checkpoints of the earlier run, when the folder's run record
    (`recorded`) says a run of these scripts wrote them; checkpoints without a record may be anyone's copies."""
    if not training_args.save_total_limit or training_args.save_total_limit <= 0:
        return
    lookalikes = [p.name for p in output_dir.glob("checkpoint-*")
                  if p.is_dir() and re.match(r".*checkpoint-[0-9]", str(p)) and not CHECKPOINT_NAME.fullmatch(p.name)]
    if lookalikes:
        raise InputError(
            f"--output_dir {output_dir} holds {', '.join(sorted(lookalikes))}, which --save_total_limit could delete "
            "as an old checkpoint; rename it or choose another --output_dir"
        )
    if checkpoints and training_args.overwrite_output_dir and not recorded:
        raise InputError(
            f"--output_dir {output_dir} holds checkpoints ({checkpoints[-1].name}, ...) that no run record "
            f"({RUN_RECORD}) says a run of these scripts wrote, and --save_total_limit could delete them; move them "
            'out, pass --save_total_limit "" to keep every checkpoint, or choose another --output_dir'
        )


def checkpoint_stamp(checkpoint):
    """When the checkpoint was last written (its trainer_state.json is written last)."""
    return os.stat(Path(checkpoint) / "trainer_state.json").st_mtime_ns


def checkpoint_to_resume(training_args, own_run=False, earlier_checkpoints=None, recorded=False, own_checkpoints=None):
    """The checkpoint policy. Returns the checkpoint to resume from (or None for a fresh run):
    --resume_from_checkpoint PATH wins; otherwise the newest complete checkpoint-N in --output_dir (half-written ones,
    left by a run killed while saving, are skipped). A non-empty --output_dir holding no checkpoint is refused unless
    --overwrite_output_dir, or own_run (its run record says the folder is this run's: it starts again over its own
    files). earlier_checkpoints ({name: checkpoint_stamp}): checkpoints another run left, never resumed unless
    rewritten since. recorded: a run record says the folder's checkpoints are a run's of these scripts.
    own_checkpoints: the checkpoints this run's record lists (None: a record written before records listed them);
    no other is resumed. Nothing is deleted here."""
    if not training_args.do_train:
        return None
    output_dir = Path(training_args.output_dir)
    checkpoints = run_checkpoints(output_dir) if output_dir.is_dir() else []
    check_checkpoint_rotation_is_safe(training_args, output_dir, checkpoints, recorded)
    explicit = training_args.resume_from_checkpoint
    if explicit:
        if not os.path.isdir(explicit):
            raise InputError(f"--resume_from_checkpoint {explicit}: no such folder; give a checkpoint-N folder")
        problem = checkpoint_problem(explicit)
        if problem:
            raise InputError(f"--resume_from_checkpoint {explicit}: not a complete checkpoint folder ({problem}); give "
                             "an earlier checkpoint-N folder")
        return explicit
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return None
    complete = []
    for checkpoint in checkpoints:
        problem = checkpoint_problem(checkpoint)
        if problem:
            logger.warning("Skipping %s: %s; it is kept as it is", checkpoint, problem)
        elif own_checkpoints is not None and checkpoint.name not in own_checkpoints:
            logger.warning("Skipping %s: this run's %s does not list it (another run's, or copied in); it is kept "
                           "as it is", checkpoint, RUN_RECORD)
        elif (earlier_checkpoints or {}).get(checkpoint.name) != checkpoint_stamp(checkpoint):
            complete.append(checkpoint)
    if complete and not training_args.overwrite_output_dir:
        logger.warning("Resuming from %s (the last complete checkpoint in --output_dir)", complete[-1])
        return str(complete[-1])
    if training_args.overwrite_output_dir or own_run:
        return None
    if all(p in checkpoints or written_before_first_checkpoint(p.name) for p in output_dir.iterdir()):
        # only what this run writes before its first complete checkpoint (half-written checkpoints, evaluation
        # predictions): it was killed before that checkpoint; it starts again and overwrites them as it goes
        return None
    raise InputError(
        f"--output_dir {output_dir} is not empty and holds no checkpoint to resume; choose another --output_dir "
        "or pass --overwrite_output_dir to write into it (files already there are kept)"
    )


# ---- What defines a run


def local_or_hub(value):
    """A local path as an absolute one (the same folder from another working directory), a Hub id as it is."""
    return str(Path(value).resolve()) if value and os.path.exists(value) else value


def fingerprint(path):
    """Size and a hash of the first and last 64 KiB: changes whenever a file is replaced or edited at either end,
    without reading a large file whole."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(f.read())
    return {"path": str(Path(path).resolve()), "size": size, "sha256_ends": digest.hexdigest()[:16]}


def plain(value):
    return getattr(value, "value", value)  # the Trainer's enums as their names


def run_definition(training_args, model_args, data_args):
    """{name: value} of everything that defines the weights a training run produces."""
    definition = {flag: local_or_hub(getattr(model_args, flag)) for flag in MODEL_FLAGS if getattr(model_args, flag)}
    if model_args.model_name_or_path:
        definition["model_revision"] = model_args.model_revision
    evaluates_while_training = training_args.eval_strategy != "no"  # the evaluations choose the best model
    for split, flag in DATA_FLAGS.items():
        path = getattr(data_args, flag, None)
        if split == "train" or (split == "validation" and evaluates_while_training):
            if path:
                definition[flag] = fingerprint(path)
            elif getattr(data_args, "dataset_name", None):
                definition[f"{split} dataset"] = f"{data_args.dataset_name} {data_args.dataset_config_name or ''}".strip()
    data_fields = [f.name for f in fields(data_args)] if is_dataclass(data_args) else []
    for name in data_fields:
        if name not in NOT_DEFINING and (name != "max_eval_samples" or evaluates_while_training):
            definition[name] = plain(getattr(data_args, name))
    for name in TRAINING_SETTINGS:
        if hasattr(training_args, name):
            definition[name] = plain(getattr(training_args, name))
    for name in OPTIONAL_SETTINGS:
        if getattr(training_args, name, None) is not None:
            definition[name] = getattr(training_args, name)
    definition["effective_batch_size"] = (training_args.per_device_train_batch_size
                                          * training_args.gradient_accumulation_steps * max(training_args.world_size, 1))
    # the fused and foreach variants of an optimizer compute the same update, faster
    definition["optimizer"] = str(plain(training_args.optim)).removesuffix("_fused").removesuffix("_foreach")
    return json.loads(json.dumps(definition))  # as it reads back from the file: tuples as lists, floats as floats


def shown(value):
    if isinstance(value, dict) and "path" in value:
        return value["path"]
    return value if isinstance(value, str) else json.dumps(value)


def differences(here, earlier, output_dir):
    """One phrase per setting that differs, model and data first."""
    found = []
    for name in [*here, *(name for name in earlier if name not in here)]:
        mine, theirs = here.get(name), earlier.get(name)
        if mine == theirs:
            continue
        if isinstance(mine, dict) and isinstance(theirs, dict) and mine.get("path") == theirs.get("path"):
            found.append(f"{name} {mine['path']} has changed since the run that wrote {output_dir} read it")
        else:
            found.append(f"{name} {shown(mine) if mine is not None else '(not set)'} here, "
                         f"{shown(theirs) if theirs is not None else '(not set)'} in the run that wrote {output_dir}")
    return found


def read_record(output_dir):
    try:
        return json.loads((output_dir / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return None


# ---- Folders a run reads


def check_output_dir_outside_inputs(training_args, model_args, data_args):
    output_dir = Path(training_args.output_dir).resolve()
    needed = {"train": training_args.do_train, "validation": training_args.do_eval, "test": training_args.do_predict}
    inputs = [(flag, getattr(data_args, flag, None)) for split, flag in DATA_FLAGS.items() if needed[split]]
    if training_args.do_train:  # an evaluation writes no model file: its results may go beside the model
        inputs += [(flag, getattr(model_args, flag)) for flag in MODEL_FLAGS]
    for flag, value in inputs:
        if value and os.path.exists(value):
            path = Path(value).resolve()
            if path == output_dir or output_dir in path.parents:
                raise InputError(f"--output_dir {training_args.output_dir} holds --{flag} {value}, which this run "
                                 "reads; its files could be overwritten: choose another --output_dir")


# ---- The lock


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def take_os_lock(fd):
    """True when the operating system holds the lock for this process until it ends, however it ends; False where
    the file system has no locks (then the process id in the file decides). Raises BlockingIOError if taken."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError:
        return False
    return True


def lock_output_dir(output_dir):
    """Takes output_dir/.run.lock for this process (creating the folder if need be) or raises InputError naming the
    run that holds it."""
    key = str(output_dir.resolve())
    release_all()  # a new run in this process (a test, a notebook): the earlier one has ended
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    path, host = output_dir / RUN_LOCK, socket.gethostname()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        holder = read_holder(fd)
        try:
            locked_by_os = take_os_lock(fd)
            if not locked_by_os and holder.get("host") == host and holder.get("pid") not in (None, os.getpid()) \
                    and process_alive(holder["pid"]):
                raise BlockingIOError
        except BlockingIOError:
            os.close(fd)
            if created:
                remove_if_empty(output_dir)
            raise InputError(f"--output_dir {output_dir} is in use by another run (process {holder.get('pid', '?')} "
                             f"on {holder.get('host', '?')}, {path}); wait for it to end or choose another "
                             "--output_dir") from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:  # the run that held it ended and removed it between our open and lock
            same_file = False
        if same_file:
            break
        os.close(fd)
    if holder.get("pid") not in (None, os.getpid()):
        logger.warning("Taking over %s, left by process %s on %s, which has ended", path, holder["pid"],
                       holder.get("host"))
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": host}).encode(), 0)
    _held[key] = {"fd": fd, "path": path, "created": created, "recorded": False}


def read_holder(fd):
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return holder if isinstance(holder, dict) else {}
    except ValueError:
        return {}


def remove_if_empty(folder):
    try:
        folder.rmdir()  # only an empty folder: nothing of anyone's is lost
    except OSError:
        pass


def release_output_dir(key):
    """Unlocks; a run that ended before writing anything but its record (bad input found once the model was
    loaded) takes the record back, and the folder if it made it, leaving the folder as it found it."""
    if key not in _held:
        return
    held = _held.pop(key)
    fd, path = held["fd"], held["path"]
    folder = path.parent
    try:
        if held["recorded"] and {p.name for p in folder.iterdir()} <= {RUN_RECORD, RUN_LOCK}:
            (folder / RUN_RECORD).unlink()
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            path.unlink()  # while still locked, so that no run can take the file being removed
    except OSError:
        pass
    os.close(fd)
    if held["created"]:
        remove_if_empty(folder)


@atexit.register
def release_all():
    for key in list(_held):
        release_output_dir(key)


def forget_locks_in_child():
    """A forked child (loader worker, tokenization process) must not keep its parent's lock after the parent ends."""
    for held in _held.values():
        os.close(held["fd"])
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=forget_locks_in_child)


# ---- The claim


def claim_output_dir(training_args, model_args, data_args):
    """Applies the rules above; returns the checkpoint to resume from, or None."""
    output_dir = Path(training_args.output_dir)
    check_output_dir_outside_inputs(training_args, model_args, data_args)
    main_process = training_args.process_index == 0  # the other ranks read what rank 0 decides, and write nothing
    if main_process:
        lock_output_dir(output_dir)
    try:
        evaluation = evaluation_definition(training_args, model_args, data_args)
        if not training_args.do_train:
            if main_process:
                claim_for_evaluation(training_args, evaluation, output_dir)
            return None
        return resume_or_record(training_args, run_definition(training_args, model_args, data_args), output_dir,
                                main_process, evaluation)
    except BaseException:
        if main_process:
            release_output_dir(str(output_dir.resolve()))
        raise


# ---- Evaluation- and prediction-only runs: the results in a folder belong to one model and one data set

RESULT_FILES = ("all_results.json", "eval_results.json", "predict_results.tsv", "predict_predictions.json")


def evaluation_definition(training_args, model_args, data_args):
    """What an evaluation's or prediction's results depend on: the model (a training run's: its output folder) and
    the data files or Hub splits; None for a run that neither evaluates nor predicts."""
    needed = {"validation": training_args.do_eval, "test": training_args.do_predict}
    if not any(needed.values()):
        return None
    model = (str(Path(training_args.output_dir).resolve()) if training_args.do_train
             else local_or_hub(model_args.model_name_or_path or model_args.config_name))
    definition = {"model": model}
    if not training_args.do_train and model_args.model_name_or_path:
        definition["model_revision"] = model_args.model_revision
    for split, wanted in needed.items():
        path = getattr(data_args, DATA_FLAGS[split], None)
        if wanted:
            definition[split] = fingerprint(path) if path and os.path.isfile(path) else (
                f"{getattr(data_args, 'dataset_name', None)} {getattr(data_args, 'dataset_config_name', None) or ''}"
                .strip())
    return json.loads(json.dumps(definition))


def claim_for_evaluation(training_args, evaluation, output_dir):
    """An evaluation- or prediction-only run writes into a folder that is new, or whose record says its results are
    this model's on this data (a re-evaluation), or that holds the model it evaluates and no other results;
    otherwise it is another run's folder: one line says whose. --overwrite_output_dir replaces the results."""
    record = read_record(output_dir) or {}
    earlier = record.get("evaluation")
    own_model = evaluation is not None and evaluation["model"] == str(output_dir.resolve())
    if earlier is not None and earlier != evaluation and not training_args.overwrite_output_dir:
        found = differences(evaluation or {}, earlier, output_dir)
        raise InputError(f"--output_dir {output_dir} holds the results of another evaluation: {found[0]}; choose "
                         "another --output_dir, or pass --overwrite_output_dir to replace them")
    foreign = record.get("definition") and not own_model or not record and any(
        (output_dir / name).exists() for name in RESULT_FILES)
    if earlier is None and foreign and not training_args.overwrite_output_dir:
        whose = ("the run that trained a model there" if record.get("definition")
                 else "a run that left no record of its model and data")
        raise InputError(f"--output_dir {output_dir} holds the results of {whose}, which this run's would replace; "
                         "choose another --output_dir (to evaluate that folder's own model there, give it as "
                         "--model_name_or_path), or pass --overwrite_output_dir to replace them")
    if evaluation is not None:
        atomic_write_json(output_dir / RUN_RECORD, {**record, "evaluation": evaluation})
        _held[str(output_dir.resolve())]["recorded"] = not record


def holds_results(output_dir):
    """Anything besides what a run writes before its first complete checkpoint."""
    half_written = {p for p in run_checkpoints(output_dir) if not is_complete_checkpoint(p)}
    return any(not written_before_first_checkpoint(p.name) and p not in half_written for p in output_dir.iterdir())


def resume_or_record(training_args, definition, output_dir, main_process, evaluation=None):
    earlier = read_record(output_dir) if output_dir.is_dir() else None
    same_run = earlier is not None and earlier.get("definition") == definition
    if earlier is not None and not same_run and not training_args.overwrite_output_dir and holds_results(output_dir):
        found = differences(definition, earlier.get("definition") or {}, output_dir)
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise InputError(f"--output_dir {output_dir} belongs to another run: {found[0]}{more}; choose another "
                         "--output_dir, or pass --overwrite_output_dir to start over in it (your files are kept; the "
                         "earlier run's checkpoints may be replaced)")
    complete = [p for p in run_checkpoints(output_dir) if is_complete_checkpoint(p)] if output_dir.is_dir() else []
    explicit, overwrite = training_args.resume_from_checkpoint, training_args.overwrite_output_dir
    if earlier is None and complete and not (explicit or overwrite):
        raise InputError(f"--output_dir {output_dir} holds checkpoints of a run that left no {RUN_RECORD} of its "
                         f"settings, so whether they are this run's cannot be told; resume one with "
                         f"--resume_from_checkpoint {complete[-1]}, choose another --output_dir, or pass "
                         "--overwrite_output_dir to start over in it (files already there are kept)")
    earlier_checkpoints = earlier.get("earlier_checkpoints", {}) if same_run and not overwrite else {}
    own_checkpoints = earlier.get("checkpoints") if same_run and not overwrite else []
    resume_from = checkpoint_to_resume(training_args, own_run=same_run, earlier_checkpoints=earlier_checkpoints,
                                       own_checkpoints=own_checkpoints,
                                       recorded=earlier is not None)
    if main_process and (not same_run or overwrite):
        if earlier is not None and not same_run and not overwrite:
            logger.warning("Taking over %s: the run that wrote it left no checkpoint or result", output_dir)
        record = {"definition": definition, "checkpoints": [], **({"evaluation": evaluation} if evaluation else {})}
        earlier_checkpoints = {p.name: checkpoint_stamp(p) for p in complete if str(p) != resume_from}
        if earlier_checkpoints:  # a run that starts beside another run's checkpoints: never to be resumed
            record["earlier_checkpoints"] = earlier_checkpoints
        atomic_write_json(output_dir / RUN_RECORD, record)
        _held[str(output_dir.resolve())]["recorded"] = True
    return resume_from


# ---- While the run trains


def check_lock_held(output_dir):
    """Before a write: the lock this process took is still the folder's. Someone deleting .run.lock under a running
    run would let a second run start in the same folder."""
    held = _held.get(str(Path(output_dir).resolve()))
    if held is None:
        return
    try:
        same = os.fstat(held["fd"]).st_ino == os.stat(held["path"]).st_ino
    except OSError:
        same = False
    if not same:
        raise InputError(f"--output_dir {output_dir}: its lock {held['path'].name} was removed while this run was "
                         "running, so another run may be writing there; stopped before writing more; check the "
                         "folder, then rerun the same command to resume")


def listed_checkpoints(output_dir):
    """The names of the checkpoints the run record lists, or None where no record lists them."""
    record = read_record(Path(output_dir))
    return set(record["checkpoints"]) if isinstance(record, dict) and "checkpoints" in record else None


def keep_checkpoints(output_dir, saved, limit, best=None):
    """Lists the checkpoint just saved in the run record, then deletes the oldest of the checkpoints the record lists
    beyond `limit` (--save_total_limit), never the newest nor the best. A checkpoint-N folder the record does not
    list (another run's, a copy, a folder of the user's) is never touched."""
    record = read_record(Path(output_dir))
    if record is None or "checkpoints" not in record:
        return
    listed = [name for name in record["checkpoints"] if name != saved and (Path(output_dir) / name).is_dir()]
    listed.append(saved)
    if limit and limit > 0:
        protected = {saved, Path(best).name if best else None}
        while len(listed) > limit and any(name not in protected for name in listed[:-1]):
            oldest = next(name for name in listed if name not in protected)
            logger.info("Deleting %s (--save_total_limit %d)", oldest, limit)
            shutil.rmtree(Path(output_dir) / oldest, ignore_errors=True)
            listed.remove(oldest)
    atomic_write_json(Path(output_dir) / RUN_RECORD, {**record, "checkpoints": listed})
