"""Result files written atomically: a reader (or a run cut off mid-write) never sees half a file."""

import json
import logging
import os
import tempfile
from pathlib import Path


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
