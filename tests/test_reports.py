"""The HTML failure pages (finetune/report.py) and compare_runs.py. No training: the runs' prediction files are written
by the functions the scripts use, or by hand."""

import html.parser
import json
import math
import re
import shutil
import subprocess

import datasets
import numpy as np
import pytest
from conftest import REPO_DIR, SAMPLE_DIR, report_data, run_main_with_output, run_python

import compare_runs
import finetune.data
from finetune.hub import IGNORE_PATTERNS
from finetune.report import failure_page
from finetune.tasks import classification_reports as reports
from finetune.tasks.text_classification import glue_task

HOSTILE = ["</script><script>alert(1)</script>", "<b>bold</b> & <!-- not a comment",
           "\"double\" 'single' `back`", "emoji 😀👍🏽 and \u2028 a line separator", "RTL: مرحبا بالعالم (end)",
           "&amp; &lt;x&gt; \\u003c"]
COLUMNS = [("index", "index"), ("label", "label"), ("score", "score"), ("text", "sentence")]


def hostile_rows():
    return [{"index": i, "label": ["negative", "positive"][i % 2], "score": round(0.5 + i / 20, 3), "text": text}
            for i, text in enumerate(HOSTILE)]


class TagCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def run_compare(*argv, capsys):
    """compare_runs.py in this process, as its command line runs it: (exit code, stdout, stderr)."""
    return run_main_with_output(compare_runs, argv, capsys)


def read_tsv(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


# ---- The page


def test_failure_page_shows_any_text_literally_and_fetches_nothing():
    page = failure_page("<i>title</i> & co", "intro </p><script>", COLUMNS, hostile_rows())
    collector = TagCollector()
    collector.feed(page)
    # the data adds no element: only the page's own tags, two scripts (the data and the code), no <b> or <i>
    assert collector.tags.count("script") == 2 and "b" not in collector.tags and "i" not in collector.tags
    assert "&lt;i&gt;title&lt;/i&gt; &amp; co" in page and "intro &lt;/p&gt;&lt;script&gt;" in page
    data = report_data(page)
    assert [row["text"] for row in data["rows"]] == HOSTILE  # the JSON round-trips, emoji and line separator too
    embedded = page.split('id="report-data">')[1].split("</script>")[0]
    assert not re.search("[<>&]", embedded)  # escaped as \\u003c etc.: no text can end the element
    assert not re.search(r"https?://|\bsrc=|\bhref=|url\(|@import", page)  # nothing is fetched
    assert "innerHTML" not in page  # the script builds the table with textContent


def test_failure_page_describes_its_columns_and_spans():
    rows = [{"id": f"q{i}", "result": ["miss", "partial", "miss"][i % 3], "f1": i / 10,
             "context": "Zoë lives in Wear.", "spans": [(0, 3, "gold"), (13, 17, "predicted")]} for i in range(5)]
    rows[1]["f1"] = float("nan")
    columns = [("id", "question id"), ("result", "result"), ("f1", "F1")]
    data = report_data(failure_page("t", "i", columns, rows, text_key="context", span_labels={"gold": "gold answer"}))
    described = {c["key"]: c for c in data["columns"]}
    assert described["f1"]["numeric"] and not described["result"]["numeric"]
    assert described["result"]["choices"] == ["miss", "partial"]  # few repeated values: a <select>
    assert described["id"]["choices"] is None and described["f1"]["choices"] is None  # all distinct / numbers
    assert data["rows"][1]["f1"] is None  # NaN: an empty cell, and the JSON stays valid
    assert data["rows"][0]["spans"] == [[0, 3, "gold"], [13, 17, "predicted"]]
    assert set(data["rows"][0]) == {"id", "result", "f1", "context", "spans"}  # nothing else of the rows is embedded
    assert data["textKey"] == "context" and data["kinds"]["gold"]["label"] == "gold answer"
    assert list(data["kinds"]) == ["gold", "predicted"]  # only the kinds in use reach the legend
    with pytest.raises(ValueError, match="unknown span kind"):
        failure_page("t", "i", columns, [{**rows[0], "spans": [(0, 1, "guess")]}], text_key="context")


PROBE = """<script>
const probe = {};
const heads = [...document.querySelectorAll("#head th")];
const firstCells = () => [...document.querySelectorAll("#rows tr:not(.text)")].map(tr => tr.cells[1].textContent);
probe.initial = document.getElementById("count").textContent;
probe.rendered = document.querySelectorAll("#rows tr").length;
heads.find(th => th.textContent === "score").click();
probe.ascending = firstCells().slice(0, 3);
heads.find(th => th.textContent === "score").click();
probe.descending = firstCells().slice(0, 3);
const search = document.getElementById("search");
search.value = "ALERT(1)";
search.dispatchEvent(new Event("input"));
probe.searched = document.getElementById("count").textContent;
search.value = "EMOJI";
search.dispatchEvent(new Event("input"));
document.querySelector("#rows tr").click();
probe.marks = [...document.querySelectorAll("#rows tr.text mark")].map(m => [m.textContent, m.title]);
probe.literal = document.querySelector("#rows tr.text .text").textContent;
search.value = "";
search.dispatchEvent(new Event("input"));
search.value = "";
search.dispatchEvent(new Event("input"));
const select = document.querySelector("#filters select");
select.value = "1";
select.dispatchEvent(new Event("change"));
probe.selected = document.getElementById("count").textContent;
document.getElementById("more").click();
probe.more = document.querySelectorAll("#rows tr:not(.text)").length;
const out = document.createElement("pre");
out.id = "probe";
out.textContent = JSON.stringify(probe);
document.body.append(out);
</script>
</body>"""


def test_the_page_renders_sorts_and_filters_in_a_browser(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    rows = [{"index": i, "label": ["negative", "positive"][i % 2], "score": (i * 37 % 450) / 450,
             "text": HOSTILE[i % len(HOSTILE)], "spans": [[0, 9, "gold"], [5, 12, "predicted"]]} for i in range(450)]
    page = failure_page("browser check", "intro", COLUMNS, rows, text_key="text")
    path = tmp_path / "page.html"
    path.write_text(page.replace("</body>", PROBE), encoding="utf-8")
    result = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", path.as_uri()],
                            capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.DOTALL)
    assert match, result.stderr[-2000:]
    probe = json.loads(html.unescape(match.group(1)))
    assert probe["initial"] == "450 of 450 shown" and probe["rendered"] == 200  # the first batch only
    by_score = sorted(range(450), key=lambda i: (rows[i]["score"], i))
    assert probe["ascending"] == [str(i) for i in by_score[:3]]
    assert probe["descending"] == [str(i) for i in sorted(range(450), key=lambda i: (-rows[i]["score"], i))[:3]]
    assert probe["searched"] == f"{sum(r['text'] == HOSTILE[0] for r in rows)} of 450 shown"  # case-insensitive
    text = HOSTILE[3]  # the emoji: offsets count code points, as in Python
    assert probe["literal"] == text
    assert [m[0] for m in probe["marks"]] == [text[0:5], text[5:9], text[9:12]]
    assert [m[1] for m in probe["marks"]] == ["gold", "gold + predicted", "predicted"]
    assert probe["selected"] == "225 of 450 shown" and probe["more"] == 225


def test_reports_that_quote_the_data_are_never_pushed():
    from huggingface_hub.utils import filter_repo_objects

    names = ["eval_failures.html", "eval_predictions.tsv", "eval_failures.tsv", "disagreements.tsv",
             "disagreements.html", "model.safetensors", "config.json", "eval_results.json"]
    assert list(filter_repo_objects(names, ignore_patterns=IGNORE_PATTERNS)) == [
        "model.safetensors", "config.json", "eval_results.json"]


# ---- compare_runs.py on SST-2 folders


def sst2_folder(path, probabilities):
    """An evaluated SST-2 folder: eval_predictions.tsv of the first sample dev sentences, as a run writes it."""
    rows = finetune.data.read_records(SAMPLE_DIR / "sst2_dev.tsv")[:len(probabilities)]
    sentences, labels = [r["sentence"] for r in rows], np.array([int(r["label"]) for r in rows])
    path.mkdir(parents=True)
    dataset = datasets.Dataset.from_dict({"sentence": sentences, "label": labels})
    files, _ = reports.evaluation_reports(dataset, np.log(probabilities), glue_task("sst2"), "SST-2")
    (path / "eval_predictions.tsv").write_text(files["eval_predictions.tsv"])
    return path, sentences, labels


@pytest.fixture
def sst2_pair(tmp_path):
    """Two SST-2 folders whose predictions differ on 5 of 30 sentences."""
    rng = np.random.default_rng(0)
    positive = rng.uniform(0.05, 0.95, 30)
    probabilities = np.stack([1 - positive, positive], axis=1)
    a, sentences, labels = sst2_folder(tmp_path / "runs/cased", probabilities)
    flipped = [2, 7, 11, 20, 29]
    probabilities_b = probabilities.copy()
    probabilities_b[flipped] = probabilities_b[flipped][:, ::-1]
    b, _, _ = sst2_folder(tmp_path / "runs/uncased", probabilities_b)
    return a, b, flipped, probabilities, probabilities_b, labels, sentences


def test_compare_sst2_lists_the_disagreements_with_both_predictions(sst2_pair, tmp_path, capsys, monkeypatch):
    a, b, flipped, probabilities, probabilities_b, labels, sentences = sst2_pair
    monkeypatch.chdir(tmp_path)
    code, out, err = run_compare(a, b, capsys=capsys)
    assert code == 0, err
    output_dir = tmp_path / "outputs/compare-cased-vs-uncased"
    rows = read_tsv(output_dir / "disagreements.tsv")
    assert [int(r["index"]) for r in rows] == flipped
    names = glue_task("sst2").label_names
    for row, i in zip(rows, flipped):
        assert row["sentence"] == sentences[i] and row["gold"] == names[labels[i]]
        assert row["A_predicted"] == names[probabilities[i].argmax()] != row["B_predicted"]
        assert float(row["A_probability"]) == pytest.approx(probabilities[i].max(), abs=1e-4)
        assert float(row["B_probability"]) == pytest.approx(probabilities_b[i].max(), abs=1e-4)
        assert row["right"] == ("A" if row["A_predicted"] == row["gold"] else "B")
    page = (output_dir / "disagreements.html").read_text()
    assert [r["index"] for r in report_data(page)["rows"]] == flipped
    accuracy_a = np.mean(probabilities.argmax(1) == labels)
    right_a = sum(r["right"] == "A" for r in rows)
    assert "Compared 30 sentences: A and B disagree on 5." in out
    assert f"A {accuracy_a:.4f}" in out and f"A is right on {right_a} and B on {5 - right_a}." in out


def test_compare_states_whether_the_difference_is_beyond_noise(sst2_pair, tmp_path, capsys):
    a, b, flipped, probabilities, probabilities_b, labels, _ = sst2_pair
    code, out, err = run_compare(a, a, "--output_dir", tmp_path / "same", capsys=capsys)
    assert code == 0, err
    same = json.loads((tmp_path / "same/comparison.json").read_text())
    assert set(same) == {"accuracy", "f1"}
    assert all(r["difference"] == 0 and r["p_value"] == 1 for r in same.values())
    assert same["accuracy"]["test"] == "McNemar exact test"
    code, out, err = run_compare(a, b, "--output_dir", tmp_path / "cmp", capsys=capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "cmp/comparison.json").read_text())["accuracy"]
    right_a, right_b = probabilities.argmax(1) == labels, probabilities_b.argmax(1) == labels
    assert (result["a"], result["b"]) == (pytest.approx(right_a.mean()), pytest.approx(right_b.mean()))
    assert result["difference"] == pytest.approx(right_b.mean() - right_a.mean())
    assert result["ci_low"] <= result["difference"] <= result["ci_high"]
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())  # 5 flips: e.g. 3 and 2
    tail = sum(math.comb(only_a + only_b, k) for k in range(min(only_a, only_b) + 1))
    assert result["p_value"] == pytest.approx(min(1, 2 * tail / 2 ** (only_a + only_b)))
    assert "accuracy: A " in out and "not larger than this evaluation set's noise" in out


def test_compare_replaces_only_its_own_files(sst2_pair, tmp_path, capsys):
    a, b, *_ = sst2_pair
    output_dir = tmp_path / "mine"
    output_dir.mkdir()
    (output_dir / "notes.txt").write_text("keep me")
    assert run_compare(a, b, "--output_dir", output_dir, capsys=capsys)[0] == 0
    assert run_compare(a, b, "--output_dir", output_dir, capsys=capsys)[0] == 0  # a rerun replaces its own files
    (output_dir / "disagreements.html").write_text("<p>my own page</p>")
    code, _, err = run_compare(a, b, "--output_dir", output_dir, capsys=capsys)
    assert code == 2 and "disagreements.html exists and was not written by compare_runs.py" in err
    assert (output_dir / "disagreements.html").read_text() == "<p>my own page</p>"
    assert (output_dir / "notes.txt").read_text() == "keep me"


# ---- compare_runs.py on SQuAD folders

SQUAD_DEV = SAMPLE_DIR / "squad_dev.json"
# first question ids of the sample dev file and two runs' answers: A right on 0, B right on 2, both wrong on 3,
# the same answer after normalization on 1 (case, punctuation, article)
ANSWERS_A = {"dev-holloway-0-0": "timber", "dev-holloway-1-0": "Zoë Brandt", "dev-holloway-2-0": "about 1,200 people",
             "dev-holloway-3-0": "grain hall"}
ANSWERS_B = {"dev-holloway-0-0": "river town", "dev-holloway-1-0": "the zoë brandt.", "dev-holloway-2-0": "1,200",
             "dev-holloway-3-0": "the river"}


def squad_folder(path, answers):
    path.mkdir(parents=True)
    (path / "eval_predictions.json").write_text(json.dumps(answers, ensure_ascii=False, indent=1))
    return path


def test_compare_squad_scores_and_highlights_the_differing_answers(tmp_path, capsys):
    a, b = squad_folder(tmp_path / "a", ANSWERS_A), squad_folder(tmp_path / "b", ANSWERS_B)
    code, out, err = run_compare(a, b, "--validation_file", SQUAD_DEV, "--output_dir", tmp_path / "cmp", capsys=capsys)
    assert code == 0, err
    rows = read_tsv(tmp_path / "cmp/disagreements.tsv")
    assert [(r["id"], r["right"]) for r in rows] == [("dev-holloway-0-0", "A"), ("dev-holloway-2-0", "B"),
                                                     ("dev-holloway-3-0", "neither")]
    assert [(r["A_f1"], r["B_f1"]) for r in rows] == [("1.000", "0.000"), ("0.500", "1.000"), ("0.000", "0.000")]
    assert rows[1]["gold"] == "1,200" and rows[1]["question"] == "How many people live in Holloway?"
    data = report_data((tmp_path / "cmp/disagreements.html").read_text())
    context = data["rows"][0]["context"]
    assert context.startswith("Holloway is a river town.")
    spans = {kind: context[start:end] for start, end, kind in data["rows"][0]["spans"]}
    assert spans == {"gold": "timber", "a": "timber", "b": "river town"}
    assert {kind for _, _, kind in data["rows"][2]["spans"]} == {"gold", "a", "b"}
    assert data["kinds"]["a"]["label"] == "A (a)"
    assert "Compared 4 questions: A and B answer 3 of them differently" in out
    assert "A 50.00 / 62.50, B 50.00 / 50.00" in out  # EM and F1 over the 4 questions
    assert "A is exactly right on 1, B on 1, both (different gold answers) on 0, neither on 1." in out
    statistics = json.loads((tmp_path / "cmp/comparison.json").read_text())
    assert statistics["exact_match"]["a"] == pytest.approx(50) and statistics["f1"]["a"] == pytest.approx(62.5)
    assert statistics["f1"]["difference"] == pytest.approx(50 - 62.5)


def test_compare_squad_without_the_validation_file_lists_the_answers(tmp_path, capsys):
    a, b = squad_folder(tmp_path / "a", ANSWERS_A), squad_folder(tmp_path / "b", ANSWERS_B)
    code, out, err = run_compare(a, b, "--output_dir", tmp_path / "cmp", capsys=capsys)
    assert code == 0, err
    assert (tmp_path / "cmp/disagreements.tsv").read_text().splitlines() == [
        "id\tA_answer\tB_answer", "dev-holloway-0-0\ttimber\triver town",
        "dev-holloway-2-0\tabout 1,200 people\t1,200", "dev-holloway-3-0\tgrain hall\tthe river"]
    assert "Give --validation_file" in out


# ---- Bad input: one line, exit code 2, nothing written


def bad_case(tmp_path, case):
    """(run A, run B, extra arguments, expected message) of one kind of bad input."""
    sst2 = sst2_folder(tmp_path / "sst2", np.tile([[0.2, 0.8]], (6, 1)))[0]
    squad = squad_folder(tmp_path / "squad", ANSWERS_A)
    other = tmp_path / "other"
    other.mkdir()
    if case == "missing folder":
        return sst2, tmp_path / "nope", [], "nope: no such folder"
    if case == "no predictions":
        return sst2, other, [], "other: no eval_predictions.tsv (text classification) or eval_predictions.json (SQuAD) in it"
    if case == "different tasks":
        return sst2, squad, [], "holds text classification predictions (eval_predictions.tsv) and"
    if case == "different sentence counts":
        sst2_folder(other / "short", np.tile([[0.2, 0.8]], (4, 1)))
        return sst2, other / "short", [], "holds 6 sentences and"
    if case == "different question ids":
        squad_folder(other / "fewer", dict(list(ANSWERS_B.items())[:3]))
        return squad, other / "fewer", [], "answers 4 questions and"
    if case == "malformed tsv":
        path = sst2_folder(other / "bad", np.tile([[0.2, 0.8]], (6, 1)))[0]
        lines = (path / "eval_predictions.tsv").read_text().splitlines()
        lines[2] = lines[2].replace("0.8000", "high")
        (path / "eval_predictions.tsv").write_text("\n".join(lines) + "\n")
        return sst2, path, [], "eval_predictions.tsv, line 3: probability 'high' is not a number from 0 to 1"
    if case == "malformed json":
        squad_folder(other / "bad", {})
        (other / "bad/eval_predictions.json").write_text('{\n  "dev-holloway-0-0": "timber",\n  "x": \n}\n')
        return squad, other / "bad", [], "eval_predictions.json, line 4: broken JSON"
    if case == "answer not text":
        squad_folder(other / "bad", {**ANSWERS_B, "dev-holloway-3-0": ["the river"]})
        return squad, other / "bad", [], "entry 4 (id 'dev-holloway-3-0'): the answer is list"
    if case == "question not in the validation file":
        squad_folder(other / "a", {**ANSWERS_A, "zz": "x"})
        squad_folder(other / "b", {**ANSWERS_B, "zz": "y"})
        return other / "a", other / "b", ["--validation_file", SQUAD_DEV], "has no question with id 'zz'"
    raise AssertionError(case)


BAD_CASES = ["missing folder", "no predictions", "different tasks", "different sentence counts",
             "different question ids", "malformed tsv", "malformed json", "answer not text",
             "question not in the validation file"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    run_a, run_b, extra, message = bad_case(tmp_path, case)
    code, _, err = run_compare(run_a, run_b, *extra, "--output_dir", tmp_path / "cmp", capsys=capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "cmp").exists()


def test_bad_input_from_the_command_line_exits_non_zero(tmp_path):
    result = run_python(REPO_DIR / "compare_runs.py", tmp_path / "a", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: the following arguments are required: run_b; fix the value in the command line"]
