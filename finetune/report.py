"""Per-example reports as one self-contained HTML page: a table to sort and filter in any browser, opened as a
local file. Nothing is fetched (no scripts, fonts, styles or images from elsewhere) and the data is never parsed as
HTML, so a sentence or a context that holds markup, quotes, emoji or right-to-left text is shown as it is."""

import html
import json
import math
from pathlib import Path

# Highlight kinds of a row's "spans": the gold answer, a model's prediction, and the predictions of the two runs of
# a comparison (compare_runs.py). Where spans overlap, the colours of all of them are shown as stripes.
SPAN_KINDS = {"gold": ("gold", "#8ce99a"), "predicted": ("predicted", "#ffc078"),
              "a": ("run A", "#74c0fc"), "b": ("run B", "#f783ac")}
MAX_CHOICES, MAX_CHOICE_LENGTH = 8, 40  # a text column of at most 8 distinct short values gets a <select>
ROWS_PER_BATCH = 200  # rows rendered at first and at each "show more": a 10,000-row report stays responsive

# The page's style and script, kept as files of their own so that they read as CSS and JavaScript; both are
# inlined into every page.
STYLE = (Path(__file__).parent / "report.css").read_text(encoding="utf-8")
SCRIPT = (Path(__file__).parent / "report.js").read_text(encoding="utf-8")


def json_for_script(obj):
    """JSON that is safe inside <script>: "<", ">" and "&" become \\u003c, \\u003e, \\u0026, so no text can close the
    element or start a comment; JSON.parse reads them back as the same characters."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def cell_value(value):
    """A number or a string for the table; None, NaN and infinities become an empty cell (null)."""
    if value is None or isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float)):
        return str(value)
    return value


def decimal_places(number):
    """Decimals to show a float with: as many as it has, at most 6 (all of a column's numbers get the same)."""
    return len(f"{number:.6f}".rstrip("0").split(".")[1])


def failure_page(title, intro, columns, rows, text_key=None, span_labels=None, generator=None):
    """One self-contained HTML page (a str) listing `rows` in a table.

    columns: [(key, heading), ...], the table's columns in order. rows: dicts holding those keys, each value a
    number or a string (None, NaN and infinities show as an empty cell); the rows are listed in the order given until
    a heading is clicked (click: sort by that column, numerically where all its values are numbers; again: reverse).
    A search box keeps the rows that contain the typed text (case-insensitive, in any column or in the row's text),
    and each text column of a few short values (at most MAX_CHOICES, some repeated: a label, "A"/"B") gets a
    <select> to keep one value. The page shows
    "N of M shown" and renders ROWS_PER_BATCH rows at a time ("show more").

    text_key: a key of each row whose value (a sentence, a SQuAD context) is shown beneath the row when the row is
    clicked, with row["spans"] highlighted: [[start, end, kind], ...], start and end counting characters as Python's
    str indexing does, kind one of SPAN_KINDS ("gold", "predicted", "a", "b"). span_labels: {kind: legend text},
    replacing SPAN_KINDS' names in the legend (e.g. the run folders of a comparison). generator: a program name
    for <meta name="generator">, so that the program can tell its own pages from a user's file of the same name."""
    numeric = {key: all(isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool)
                        for row in rows if cell_value(row.get(key)) is not None) for key, _ in columns}
    data_rows = []
    for row in rows:
        data = {key: cell_value(row.get(key)) for key, _ in columns}
        if text_key:
            data[text_key] = str(row.get(text_key) or "")
            data["spans"] = [[int(start), int(end), str(kind)] for start, end, kind in row.get("spans") or ()]
        data_rows.append(data)
    described = []
    for key, heading in columns:
        values = {data[key] for data in data_rows}
        # a category (a label, "A"/"B"): text, short, few values, some repeated; not an index, a score or a sentence
        categorical = (not numeric[key] and 1 < len(values) <= MAX_CHOICES and len(values) < len(data_rows)
                       and all(len(str(v)) <= MAX_CHOICE_LENGTH for v in values))
        choices = sorted(values, key=lambda v: (v is None, str(v))) if categorical else None
        decimals = max((decimal_places(v) for v in values if isinstance(v, float)), default=0)
        wide = not numeric[key] and any(len(str(v)) > MAX_CHOICE_LENGTH for v in values)  # text: it gets the room
        described.append({"key": key, "heading": heading, "numeric": numeric[key], "decimals": decimals,
                          "wide": wide, "choices": choices})
    used = {span[2] for data in data_rows for span in data.get("spans", ())}
    unknown = used - set(SPAN_KINDS)
    if unknown:
        raise ValueError(f"unknown span kind(s) {sorted(unknown)}; use {', '.join(SPAN_KINDS)}")
    kinds = {kind: {"label": (span_labels or {}).get(kind, label), "colour": colour}
             for kind, (label, colour) in SPAN_KINDS.items() if kind in used}
    data = {"columns": described, "rows": data_rows, "textKey": text_key, "kinds": kinds,
            "rowsPerBatch": ROWS_PER_BATCH}
    meta = f'<meta name="generator" content="{html.escape(generator)}">\n' if generator else ""
    return PAGE.format(title=html.escape(title), intro=html.escape(intro), meta=meta, style=STYLE, script=SCRIPT,
                       data=json_for_script(data))


# The policy forbids every fetch; the inline style and script are the page's own.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'">
{meta}<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
<p class="intro">{intro}</p>
<noscript><p>This report needs JavaScript to show its table.</p></noscript>
<div class="controls">
<input type="search" id="search" placeholder="Filter: text in any column" aria-label="Filter rows">
<span id="filters"></span>
<span class="count" id="count"></span>
</div>
<div class="controls">
<span id="hint">Click a row to show its text.</span> <span class="legend" id="legend"></span>
</div>
<div class="scroll"><table>
<thead><tr id="head"></tr></thead>
<tbody id="rows"></tbody>
</table></div>
<button id="more" hidden></button>
<script type="application/json" id="report-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
