"""Hostile input to run_glue_sst2.py: bad data files end with one error line, exit code 2, no traceback, and nothing
written to the output folder."""

import pytest
from conftest import SAMPLE_DIR, TINY_MODEL

import finetune.cli
import run_glue_sst2

SST2_RUN = [*TINY_MODEL, "--train_file", SAMPLE_DIR / "sst2_train.tsv", "--do_train", "--max_steps", 2,
            "--per_device_train_batch_size", 8, "--max_seq_length", 32, "--report_to", "none", "--disable_tqdm", "true"]


def run(module, argv, capsys):
    """module.main(argv) as its command line runs it (through run_main): (exit code, stdout, stderr)."""
    try:
        finetune.cli.run_main(lambda: module.main([str(a) for a in argv]))
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(code, out, err, *messages):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    for message in messages:
        assert message in lines[0], err


# ---- Data files


@pytest.mark.parametrize("name, content, message", [
    ("train.tsv", "sentence\tlabel\ngood\t1\nbad\t99999999999999999999\n",
     "train.tsv, line 3: label '99999999999999999999' is outside the label set {0, 1}"),
    ("train.tsv", f"sentence\tlabel\ngood\t1\nbad\t{'9' * 5000}\n",
     "train.tsv, line 3: label '99999999999999999999999999999... (5000 characters) is outside the label set"),
    ("train.jsonl", '{"sentence": "good", "label": 1}\n{"sentence": "bad", "label": 1e400}\n',
     "train.jsonl, line 2: label inf is not 0/1 or negative/positive"),
    ("train.json", f'[{{"sentence": "good", "label": 1}}, {{"sentence": "bad", "label": 1{"0" * 400}}}]',
     "train.json, record 1: label 100000000000000000000000000000... (401 characters) is outside the label set"),
    ("train.jsonl", f'{{"sentence": "good", "label": 1}}\n{{"sentence": "bad", "label": {"9" * 5000}}}\n',
     "train.jsonl, line 2: a number of more than 4300 digits; fix that line"),
    ("train.csv", "sentence,label,label\ngood,1,0\n",
     "train.csv, line 1: the header names the column 'label' more than once; rename or remove the extra column"),
    ("train.tsv", "sentence\tlabel\tsentence\ngood\t1\tbad\n", "the header names the column 'sentence' more than once"),
])
def test_absurd_labels_and_repeated_columns(tmp_path, capsys, name, content, message):
    data = tmp_path / name
    data.write_text(content)
    code, out, err = run(run_glue_sst2, [*SST2_RUN, "--train_file", data, "--output_dir", tmp_path / "out"], capsys)
    assert_one_error_line(code, out, err, message)
    assert not (tmp_path / "out").exists()
