"""The output folder: result files written atomically, and the checkpoint policy (resume from the newest complete
checkpoint, refuse to mix runs, never delete what the user had)."""

import fnmatch
import json
import logging
import os
import re
import tempfile
from pathlib import Path

from finetune.errors import InputError

logger = logging.getLogger(__name__)


def umask_file_mode():
    umask = os.umask(0)  # the only way to read the umask is to set it
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = umask_file_mode()  # what open() would give a new file (mkstemp's files are private: 0600)


def atomic_write_text(path, text):
    """Writes through a temp file and a rename, so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def atomic_write_json(path, obj, entry_per_line=False):
    """entry_per_line: a large mapping (SQuAD's 10k predictions) as one compact line per key, still readable and
    about twice as fast to write as indented JSON (which Python's C encoder does not do)."""
    if entry_per_line and isinstance(obj, dict) and obj:
        entries = ",\n".join(f"  {json.dumps(str(key), ensure_ascii=False)}: {json.dumps(value, ensure_ascii=False)}"
                              for key, value in obj.items())
        atomic_write_text(path, "{\n" + entries + "\n}\n")
    else:
        atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def save_metrics(output_dir, split, metrics):
    """<split>_results.json, plus the same keys merged into all_results.json (the Trainer's layout)."""
    atomic_write_json(Path(output_dir) / f"{split}_results.json", metrics)
    all_path = Path(output_dir) / "all_results.json"
    all_results = json.loads(all_path.read_text()) if all_path.exists() else {}
    atomic_write_json(all_path, {**all_results, **metrics})


CHECKPOINT_NAME = re.compile(r"checkpoint-\d+")
RUN_RECORD, RUN_LOCK = ".run.json", ".run.lock"  # what defines the run that trains here, and who runs now (runs.py)


def written_before_first_checkpoint(name):
    """What a training run may write into --output_dir before its first checkpoint: its record and lock, TensorBoard
    runs, and the per-example files of its evaluations during training (each task names its own)."""
    from finetune.tasks import per_example_files  # (the tasks import the shared modules, this one among them)

    return name in ("runs", RUN_RECORD, RUN_LOCK) or any(fnmatch.fnmatchcase(name, p) for p in per_example_files())


MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
               "adapter_model.safetensors", "pytorch_model_fsdp_0")  # the last one: FSDP's sharded state dict folder


def is_complete_checkpoint(folder):
    """The Trainer writes trainer_state.json last: a checkpoint without a readable one was cut off mid-write."""
    folder = Path(folder)
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return any((folder / name).exists() for name in MODEL_FILES)


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


def checkpoint_to_resume(training_args, own_run=False, earlier_checkpoints=None, recorded=False):
    """The checkpoint policy. Returns the checkpoint to resume from (or None for a fresh run):
    --resume_from_checkpoint PATH wins; otherwise the newest complete checkpoint-N in --output_dir (half-written ones,
    left by a run killed while saving, are skipped). A non-empty --output_dir holding no checkpoint is refused unless
    --overwrite_output_dir, or own_run (its run record says the folder is this run's: it starts again over its own
    files). earlier_checkpoints ({name: checkpoint_stamp}): checkpoints another run left, never resumed unless
    rewritten since. recorded: a run record says the folder's checkpoints are a run's of these scripts. Nothing is
    deleted here."""
    if not training_args.do_train:
        return None
    output_dir = Path(training_args.output_dir)
    checkpoints = run_checkpoints(output_dir) if output_dir.is_dir() else []
    check_checkpoint_rotation_is_safe(training_args, output_dir, checkpoints, recorded)
    explicit = training_args.resume_from_checkpoint
    if explicit:
        if not os.path.isdir(explicit):
            raise InputError(f"--resume_from_checkpoint {explicit}: no such folder; give a checkpoint-N folder")
        if not is_complete_checkpoint(explicit):
            raise InputError(f"--resume_from_checkpoint {explicit}: not a complete checkpoint folder (no readable "
                             "trainer_state.json or model weights); give an earlier checkpoint-N folder")
        return explicit
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return None
    for incomplete in (p for p in checkpoints if not is_complete_checkpoint(p)):
        logger.warning("Skipping %s: it was not completely written (the run was cut off while saving)", incomplete)
    earlier = earlier_checkpoints or {}
    complete = [p for p in checkpoints if is_complete_checkpoint(p)
                and earlier.get(p.name) != checkpoint_stamp(p)]
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
