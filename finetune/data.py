"""Reading the data: local files with row-precise errors, SQuAD records, Hub dataset splits, sample limits, and
tokenization in worker processes."""

import collections
import contextlib
import csv
import gc
import gzip
import io
import json
import numbers
import os
import re
import tempfile
from pathlib import Path

import datasets
import pyarrow

from finetune.errors import InputError

REPO_DIR = Path(__file__).resolve().parent.parent
DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".txt")


def load_hub_split(dataset_name, config_name, split):
    """Rows of one split of a Hub dataset, each with its '_row' for error messages, and the name to cite."""
    try:
        dataset = datasets.load_dataset(dataset_name, config_name, split=split)
    except Exception as error:  # the Hub raises many kinds; all mean "cannot get this dataset"
        raise InputError(f"could not load split '{split}' of {dataset_name}: {str(error).splitlines()[0]}") from None
    return [{**row, "_row": f"row {i}"} for i, row in enumerate(dataset.to_list())], f"{dataset_name}[{split}]"


def first_rows(dataset, limit):
    """The first `limit` rows (all of them without a limit: --max_*_samples)."""
    return dataset if limit is None else dataset.select(range(min(limit, len(dataset))))


@contextlib.contextmanager
def cycle_collection_paused():
    """For reading the data. A data file becomes up to a million small dicts and lists, none in a reference cycle,
    and their allocation alone keeps triggering Python's cycle collector, which walks them all again each time.
    Afterwards they, and the objects of the imports, stay out of its way (gc.freeze: the collections during
    tokenization skip them; reference counting still frees them)."""
    gc.collect()  # what is garbage now goes before the freeze below
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
    gc.freeze()


# ----------------------------------------------------------------------------------------------------------------
# SQuAD: every problem found in a data file (a missing field, an empty context or question, an answer_start that
# does not point at the answer text, a duplicate id, a question without answer outside v2) is an InputError naming
# the file and the record. Nothing is skipped silently, because a skipped row changes the metrics.


def load_squad_file(path, with_answers=True, version_2_with_negative=False, columns=None):
    """Records (id, title, context, question[, answers{text, answer_start}]) from the official nested SQuAD JSON
    (data -> paragraphs -> qas, optionally .gz) or flat .json/.jsonl/.csv rows; a CSV holds `answers` as JSON text.
    with_answers=False reads a prediction file (answers are neither needed nor read). columns: {a flat file's
    column: the SQuAD name it holds} (run_squad.py's --question_column_name, ...)."""
    rows = read_records(path, flag="a SQuAD file")
    if any("paragraphs" in row for row in rows):
        rows = flatten_squad(rows, path)
    else:
        rows = renamed_columns(rows, columns)
    return squad_records(rows, path, with_answers, version_2_with_negative)


def renamed_columns(rows, columns):
    """The rows with their columns renamed by `columns` ({name in the data: name here}); as they are without."""
    columns = {name: ours for name, ours in (columns or {}).items() if name != ours}
    if not columns:
        return rows
    return [{columns.get(key, key): value for key, value in row.items() if key not in columns.values()} for row in rows]


def flatten_squad(articles, source):
    """The official layout (articles -> paragraphs -> qas) as one flat row per question."""
    rows = []
    for article in articles:
        where = article["_row"]
        paragraphs = article.get("paragraphs")
        if not isinstance(paragraphs, list):
            raise InputError(f"{source}, {where}: expected 'paragraphs' to be a list (SQuAD layout: data -> "
                             "paragraphs -> qas); fix the file layout")
        for p, paragraph in enumerate(paragraphs):
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(qas, list):
                raise InputError(f"{source}, {where}, paragraph {p}: expected a dict with 'context' and a 'qas' "
                                 "list (SQuAD layout: data -> paragraphs -> qas); fix the file layout")
            for q, qa in enumerate(qas):
                if not isinstance(qa, dict):
                    raise InputError(f"{source}, {where}, paragraph {p}, question {q}: expected a JSON object")
                rows.append({"title": article.get("title", ""), "context": paragraph.get("context"), **qa,
                             "_row": f"{where}, paragraph {p}, question {q}"})
    return rows


def squad_records(rows, source, with_answers=True, version_2_with_negative=False):
    """Validates flat rows (from a file or a Hub dataset) and returns clean records (the rules above)."""
    records, seen = [], {}
    for row in rows:
        where = f"{source}, {row.get('_row', '?')}"
        for name in ("id", "context", "question"):
            if row.get(name) is None:
                raise InputError(f"{where}: missing field '{name}'; every question needs id, context and question")
        qid = str(row["id"])
        where = f"{where} (id {qid})"
        if qid in seen:
            raise InputError(f"{where}: duplicate id, first used at {seen[qid]}; ids must be unique")
        seen[qid] = row.get("_row", "?")
        context, question = row["context"], row["question"]
        if not isinstance(context, str) or not context.strip():
            raise InputError(f"{where}: empty context; fill it in or drop the question")
        # Some SQuAD questions start with long runs of spaces that would only waste window tokens.
        question = question.strip() if isinstance(question, str) else ""
        if not question:
            raise InputError(f"{where}: empty question; fill it in or drop the row")
        record = {"id": qid, "title": str(row.get("title") or ""), "context": context, "question": question}
        if with_answers:
            record["answers"] = parse_answers(row, context, where, version_2_with_negative)
        records.append(record)
    if not records:
        raise InputError(f"{source}: no questions found")
    return records


def parse_answers(row, context, where, version_2_with_negative):
    """answers as {text: [...], answer_start: [...]} (Hub layout), a list of {text, answer_start} (official layout)
    or either as JSON text (CSV); every answer_start must point at its text in the context."""
    answers = row.get("answers")
    if isinstance(answers, str):
        try:
            answers = json.loads(answers)
        except (ValueError, RecursionError):  # (a JSONDecodeError is a ValueError)
            raise InputError(f"{where}: 'answers' is not valid JSON; write it as "
                             '{"text": [...], "answer_start": [...]}') from None
    if isinstance(answers, dict) and isinstance(answers.get("text"), list):
        starts = answers.get("answer_start")
        if not isinstance(starts, list) or len(starts) != len(answers["text"]):
            raise InputError(f"{where}: 'answers' needs as many answer_start values as texts")
        answers = [{"text": t, "answer_start": s} for t, s in zip(answers["text"], starts)]
    if not isinstance(answers, list):
        raise InputError(f"{where}: missing or malformed 'answers'; expected "
                         '{"text": [...], "answer_start": [...]} or a list of {"text", "answer_start"}')
    texts, starts = [], []
    for answer in answers:
        text = answer.get("text") if isinstance(answer, dict) else None
        start = answer.get("answer_start") if isinstance(answer, dict) else None
        if not isinstance(text, str) or not text or not isinstance(start, int) or isinstance(start, bool):
            raise InputError(f"{where}: each answer needs a non-empty 'text' and an integer 'answer_start'")
        if start < 0:  # Python would read a negative start from the end of the context
            raise InputError(f"{where}: answer_start {start} is negative; it counts characters from the context's "
                             "start: fix answer_start")
        if context[start:start + len(text)] != text:
            raise InputError(f"{where}: answer_start {start} points at {context[start:start + len(text)]!r}, "
                             f"not at the answer {text!r}; fix answer_start")
        texts.append(text)
        starts.append(start)
    if not texts and not version_2_with_negative:
        raise InputError(f"{where}: the question has no answer; pass --version_2_with_negative for data with "
                         "unanswerable questions (SQuAD v2)")
    return {"text": texts, "answer_start": starts}


# ----------------------------------------------------------------------------------------------------------------
# Files


def split_suffix(path):
    """'dev.tsv.gz' -> '.tsv' (the format, whether gzipped or not)."""
    name = str(path)[:-3] if str(path).endswith(".gz") else str(path)
    return os.path.splitext(name)[1].lower()


def read_text(path, flag="a data file"):
    """The whole file as text (gzip handled). Missing files and bytes that are not UTF-8 are InputErrors."""
    if not os.path.isfile(path):
        if not os.path.isabs(path) and (REPO_DIR / path).is_file():  # a recipe's path, run from another folder
            raise InputError(f"{path}: file not found in {os.getcwd()}; the recipes' paths are relative to the "
                             f"repository: run from {REPO_DIR} or give {flag} an absolute path")
        raise InputError(f"{path}: file not found; check the path given to {flag}")
    with open(path, "rb") as f:
        raw = f.read()
    if str(path).endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise InputError(f"{path}: not a valid gzip file ({error}); re-download or decompress it") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(f"{path}, line {line}: bytes that are not UTF-8; re-save the file as UTF-8") from None


def text_lines(text):
    """Lines split at \\n, \\r\\n or \\r only: str.splitlines also splits at U+2028, U+0085, form feeds and other
    characters that are ordinary text inside a sentence or a JSON string."""
    return re.split(r"\r\n|\r|\n", text)


def read_records(path, flag="a data file"):
    """Rows of a .csv/.tsv/.json/.jsonl/.txt file (optionally .gz) as a list of dicts, each with its location
    under the key '_row' ("line 12" / "record 3") for error messages."""
    suffix = split_suffix(path)
    if suffix not in DATA_SUFFIXES:
        raise InputError(f"{path}: unsupported file type; use .csv, .tsv, .json, .jsonl or .txt (optionally .gz)")
    text = read_text(path, flag)
    if not text.strip():
        raise InputError(f"{path}: the file is empty; it needs a header and at least one row")
    if suffix == ".txt":  # one sentence per line, for prediction
        rows = [{"sentence": line, "_row": f"line {i}"} for i, line in enumerate(text_lines(text), 1) if line.strip()]
    elif suffix in (".csv", ".tsv"):
        rows = read_delimited(path, text, suffix)
    else:
        rows = read_json_rows(path, text, suffix)
    if not rows:
        raise InputError(f"{path}: no data rows (only a header?); add rows or fix the file")
    return rows


def read_delimited(path, text, suffix):
    # GLUE's .tsv files hold bare quote characters inside sentences: quoting must be off for tab-separated files. A
    # quoted .csv field may hold line breaks, so the reader gets the text with its line ends (newline="").
    options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
    reader = csv.reader(io.StringIO(text, newline=""), **options)
    try:
        header = next(reader)
        repeated = sorted(name for name, count in collections.Counter(header).items() if count > 1)
        if repeated:  # a row's dict keeps the last of the two: the run would read the wrong column, silently
            raise InputError(f"{path}, line 1: the header names the column '{repeated[0]}' more than once; rename or "
                             "remove the extra column")
        rows = []
        line_number = reader.line_num + 1  # where the next row starts: a row may span several lines
        for values in reader:
            row_line, line_number = line_number, reader.line_num + 1
            if not values:
                continue
            if len(values) != len(header):
                raise InputError(
                    f"{path}, line {row_line}: {len(values)} fields where the header has {len(header)}; "
                    f"fix that row (a stray {'tab' if suffix == '.tsv' else 'comma or quote'}?)"
                )
            rows.append({**dict(zip(header, values)), "_row": f"line {row_line}"})
    except csv.Error as error:
        raise InputError(f"{path}, line {reader.line_num}: {error}; fix the quoting of that row") from None
    return rows


def read_json_rows(path, text, suffix):
    """A JSON list of objects, {"data": [...]}, or JSON lines (datasets' json loader accepts all three)."""
    if suffix == ".json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            if text.lstrip().startswith("{") and "\n{" in text.strip():
                document = None  # JSON lines in a .json file
            else:
                raise InputError(f"{path}, line {error.lineno}: broken JSON ({error.msg}); fix the file") from None
        except (ValueError, RecursionError) as error:
            raise InputError(f"{path}: {unreadable_json(error)}; fix the file") from None
        if document is not None:
            records = document.get("data") if isinstance(document, dict) else document
            if isinstance(document, dict) and records is None:
                records = [document]
            if not isinstance(records, list):
                raise InputError(f"{path}: expected a list of records (or {{\"data\": [...]}}); fix the file layout")
            return [check_object(path, record, f"record {i}") for i, record in enumerate(records)]
    rows = []
    for line_number, line in enumerate(text_lines(text), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}, line {line_number}: broken JSON line ({error.msg}); fix that line") from None
        except (ValueError, RecursionError) as error:
            raise InputError(f"{path}, line {line_number}: {unreadable_json(error)}; fix that line") from None
        rows.append(check_object(path, record, f"line {line_number}"))
    return rows


def unreadable_json(error):
    """What made valid JSON syntax unreadable: Python reads no integer of more than 4300 digits, and recurses once
    per level of nesting."""
    if isinstance(error, RecursionError):
        return "lists or objects nested too deeply to read"
    return "a number of more than 4300 digits"


TSV_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")  # a tab, and whatever str.splitlines splits at


# What a spreadsheet opening a TSV evaluates as a formula: a cell beginning with =, +, - or @, also after spaces (a
# tab or CR first is one too, and TSV_BREAKS turns those into spaces). Quotes already there count, so that one more
# leading quote is always the one tsv_cell added.
FORMULA_START = re.compile(r"'*\s*[=+\-@]")
PLAIN_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*|\s*-\s*")  # (a lone "-": "none")


def tsv_cell(value):
    """One cell of a TSV report. A number is written as it is. In text, a tab or a line break would split the row,
    so each run of them becomes one space, and text a spreadsheet would run as a formula gets a leading apostrophe,
    the convention spreadsheets themselves use for "this is text" (tsv_value reads it back); the rest of the text
    (GLUE's trailing spaces too) is kept as it is."""
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return str(value)
    text = TSV_BREAKS.sub(" ", str(value))
    return "'" + text if FORMULA_START.match(text) and not PLAIN_NUMBER.fullmatch(text) else text


def tsv_value(cell):
    """The text tsv_cell wrote `cell` for."""
    return cell[1:] if cell.startswith("'") and tsv_cell(cell[1:]) == cell else cell


def check_object(path, record, where):
    if not isinstance(record, dict):
        raise InputError(f"{path}, {where}: expected a JSON object with named fields, got {type(record).__name__}")
    return {**record, "_row": where}


def preprocessing_processes(requested, rows):
    """--preprocessing_num_workers for datasets.map: never more processes than CPU cores or rows (a recipe asks for
    16 and still runs on a laptop); 1 or fewer means the main process."""
    processes = min(requested or 1, os.cpu_count() or 1, rows)
    if processes <= 1:
        return None
    # One tokenizer thread per process: otherwise each of N processes starts a thread pool as large as the machine
    # (N x cores threads). An explicit TOKENIZERS_PARALLELISM from the user wins.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return processes


def map_in_processes(dataset, function, requested_processes, **map_args):
    """dataset.map(function, batched=True) in up to `requested_processes` worker processes (preprocessing_processes).
    datasets sends each worker its shard pickled, and a shard of an in-memory dataset pickles the whole table
    (pyarrow pickles a slice with its full buffers): N workers would be sent N copies, one after the other. So an in-memory dataset is first written to one Arrow file in datasets' temporary folder (removed at
    exit): a shard then pickles as a file name and a row range. The results stay in memory, as without workers."""
    processes = preprocessing_processes(requested_processes, len(dataset))
    in_memory = not dataset.cache_files
    if processes and in_memory:
        folder = tempfile.mkdtemp(dir=datasets.fingerprint.get_temporary_cache_files_directory())
        path = os.path.join(folder, "rows.arrow")
        rows = dataset.with_format("arrow")[:]  # in the dataset's order (a selection or shuffle applied)
        with pyarrow.OSFile(path, "wb") as sink, pyarrow.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
        dataset = datasets.Dataset.from_file(path, info=dataset.info)
    return dataset.map(function, batched=True, num_proc=processes, keep_in_memory=in_memory, **map_args)
