"""Numbers and text checked where they enter, each refused in one line in the vocabulary of the command that received
it (the scripts' flags, the pipeline's arguments, the shell's flags, push_to_hub.py's folder and repository id); a
recipe parsed with limits; the error line printed last, on a line of its own."""

import sys

import pytest
import tqdm
from conftest import run_main_with_output, saved_tiny_model
from test_hostile_inputs import SST2_RUN, assert_one_error_line, finished_folder, script  # noqa: F401 (fixtures)

import finetune.cli
import push_to_hub
import run_glue_sst2
import utils_qa
from finetune.errors import InputError
from utils_qa import qa_pipeline

WINDOWS = {"max_seq_len": 64, "doc_stride": 16, "max_question_len": 16}
CONTEXT = "Marlow lies on the river Tess, north of the old bridge."


# ---- The scripts' numbers


@pytest.mark.parametrize("length, message", [
    (1, "--max_seq_length 1 leaves 0 tokens of a text after its 2 special tokens"),
    (5, "--max_seq_length 5 leaves 3 tokens of a text after its 2 special tokens"),
])
def test_a_max_seq_length_that_leaves_no_room_for_text(tmp_path, capsys, length, message):
    code, out, err = run_main_with_output(run_glue_sst2, [*SST2_RUN, "--max_seq_length", length, "--output_dir",
                                                          tmp_path / "out"], capsys)
    assert_one_error_line(code, out, err, message, "use at least 6")
    assert not (tmp_path / "out").exists()


def test_eval_accumulation_steps_0(tmp_path, capsys, script):
    module, run = script
    code, out, err = run_main_with_output(module, [*run, "--eval_accumulation_steps", 0, "--output_dir",
                                                   tmp_path / "out"], capsys)
    assert_one_error_line(code, out, err, "--eval_accumulation_steps must be at least 1 (got 0)")
    assert not (tmp_path / "out").exists()


def test_an_optimizer_step_larger_than_the_training_data_is_a_warning(tmp_path, capsys, caplog):
    """It still trains (every step on all the rows): a recipe tried on a few rows is a fair smoke test."""
    code, out, err = run_main_with_output(run_glue_sst2, [*SST2_RUN, "--max_train_samples", 12,
                                                          "--gradient_accumulation_steps", 2, "--output_dir",
                                                          tmp_path / "out"], capsys)
    assert code == 0, err
    assert ("--per_device_train_batch_size 8 x --gradient_accumulation_steps 2 x 1 process(es) = 16 examples per "
            "optimizer step, more than the 12 training examples") in caplog.text
    assert (tmp_path / "out" / "model.safetensors").exists()


# ---- The question-answering pipeline and its shell


@pytest.fixture(scope="module")
def qa_model(tmp_path_factory):
    return saved_tiny_model(tmp_path_factory.mktemp("qa") / "model", "AutoModelForQuestionAnswering")


@pytest.mark.parametrize("options, message", [
    ({"top_k": 0}, "top_k must be at least 1 (got 0)"),
    ({"top_k": -1}, "top_k must be at least 1 (got -1)"),
    ({"top_k": "3"}, "top_k must be a whole number (got '3' of type str)"),
    ({"max_answer_len": 0}, "max_answer_len must be at least 1 (got 0)"),
    ({"max_question_len": 0}, "max_question_len must be at least 1 (got 0)"),
    ({"max_question_len": -4}, "max_question_len must be at least 1 (got -4)"),
    ({"doc_stride": -1}, "doc_stride must be at least 0 (got -1)"),
    ({"batch_size": -1}, "batch_size must be at least 1 (got -1)"),
    ({"batch_size": 0}, "batch_size must be at least 1 (got 0)"),
    ({"handle_impossible_answer": "no"}, "handle_impossible_answer must be True or False (got 'no')"),
    ({"max_seq_len": 20}, "max_seq_len 20 leaves 1 tokens of context after a question of up to max_question_len 16 "
                          "tokens and the special tokens; raise max_seq_len or lower max_question_len"),
    ({"doc_stride": 50}, "doc_stride 50 leaves no new context per window: with max_seq_len 64 and max_question_len 16 "
                         "a window holds 45 context tokens; use doc_stride below 45"),
])
def test_pipeline_arguments_are_checked_and_named_as_the_pipeline_names_them(qa_model, options, message):
    qa = qa_pipeline(qa_model, **WINDOWS)
    with pytest.raises(InputError) as error:
        qa(question="Which river?", context=CONTEXT, **options)
    assert str(error.value) == message and "--" not in str(error.value)
    if "must be" in message and "batch_size" not in options:  # the same at construction
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            qa_pipeline(qa_model, **{**WINDOWS, **options})


def test_pipeline_batch_size_at_construction_and_empty_question_lists(qa_model):
    with pytest.raises(InputError, match=r"^batch_size must be at least 1 \(got -1\)$"):
        qa_pipeline(qa_model, batch_size=-1, **WINDOWS)(question="Which river?", context=CONTEXT)
    qa = qa_pipeline(qa_model, **WINDOWS)
    for question, context in (([], []), ("Which river?", [])):
        with pytest.raises(InputError, match="^no questions: give at least one question and its context$"):
            qa(question=question, context=context)
    answers = qa(question="Which river?", context=[CONTEXT, CONTEXT], top_k=2)  # one question, two contexts
    assert len(answers) == 2 and all(len(ranked) == 2 and ranked[0]["answer"] for ranked in answers)


@pytest.mark.parametrize("flags, message", [
    (["--top_k", "0"], "error: --top_k must be at least 1 (got 0)"),
    (["--top_k", "three"], "error: argument --top_k: invalid int value: 'three'; see --help"),
    (["--max_question_len", "-1"], "error: --max_question_len must be at least 1 (got -1)"),
    (["--doc_stride", "-3"], "error: --doc_stride must be at least 0 (got -3)"),
    (["--max_seq_len", "64", "--doc_stride", "50"], "error: --doc_stride 50 leaves no new context per window: with "
                                                    "--max_seq_len 64 and --max_question_len 16"),
])
def test_the_shell_names_its_own_flags(qa_model, capsys, flags, message):
    with pytest.raises(SystemExit) as stop:
        utils_qa.main([str(qa_model), "Which river?", "--context", CONTEXT, "--max_question_len", "16", *flags])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert stop.value.code == 2 and lines[-1].startswith(message) and not any("usage" in line for line in lines), err


@pytest.mark.parametrize("position", [1, 3])
def test_the_shell_refuses_text_that_is_not_utf8(qa_model, capsys, position):
    """What Python makes of the byte 0xff on a command line: a surrogate escape."""
    argv = [str(qa_model), "Which river?", "--context", CONTEXT]
    argv[position] += "\udcff"
    with pytest.raises(SystemExit) as stop:
        utils_qa.main(argv)
    err = capsys.readouterr().err
    what = "the question" if position == 1 else "--context"
    assert stop.value.code == 2 and err.strip().splitlines() == [
        f"error: {what} is not UTF-8 text (byte ff at character {len(argv[position])}); retype it in a UTF-8 "
        "terminal, or put the text in a UTF-8 file"], err


# ---- push_to_hub.py


@pytest.mark.parametrize("name, state", [("checkpoint-40", ["optimizer.pt", "rng_state.pth"]),
                                         ("checkpoint-40", []), ("copied", ["optimizer.pt"])])
def test_push_to_hub_refuses_a_checkpoint(finished_folder, capsys, name, state):
    checkpoint = finished_folder.parent / "run" / name
    checkpoint.parent.mkdir()
    finished_folder.rename(checkpoint)
    for file in state:
        (checkpoint / file).write_bytes(b"state")
    before = sorted(p.name for p in checkpoint.iterdir())
    code, out, err = run_main_with_output(push_to_hub, [checkpoint, "--hub_model_id", "me/x"], capsys)
    assert_one_error_line(code, out, err, f"{checkpoint} is a checkpoint of a run", "not a finished output folder",
                          f"push the run's folder ({checkpoint.parent}) once it has finished")
    assert sorted(p.name for p in checkpoint.iterdir()) == before  # no card written into it


@pytest.mark.parametrize("flags, message", [
    (["--hub_model_id", "me/bad id!"], "--hub_model_id 'me/bad id!' is not a valid Hub repository id"),
    (["--hub_model_id", "a/b/c"], "--hub_model_id 'a/b/c' is not a valid Hub repository id"),
])
def test_push_to_hub_refuses_an_invalid_repository_id_before_writing_the_card(finished_folder, capsys, flags,
                                                                              message):
    (finished_folder / "README.md").write_text("my own notes\n")
    code, out, err = run_main_with_output(push_to_hub, [finished_folder, *flags], capsys)
    assert_one_error_line(code, out, err, message, "give --hub_model_id as name or org/name")
    assert sorted(p.name for p in finished_folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (finished_folder / "README.md").read_text() == "my own notes\n"


def test_push_to_hub_names_the_folder_when_its_name_is_the_invalid_id(tmp_path, finished_folder, capsys):
    folder = tmp_path / "my run"
    finished_folder.rename(folder)
    code, out, err = run_main_with_output(push_to_hub, [folder], capsys)
    assert_one_error_line(code, out, err, "the folder's name (the default --hub_model_id) 'my run' is not a valid")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


# ---- Text that is not UTF-8 on the command line


@pytest.mark.parametrize("flags, message", [
    (["--output_dir", "out\udcff"], "the value of --output_dir is not UTF-8 text (byte ff)"),
    (["--output_dir=out\udcff"], "the value of --output_dir is not UTF-8 text (byte ff)"),
    (["--run_name", "caf\udce9"], "the value of --run_name is not UTF-8 text (byte e9)"),
    (["--hub_token", "hf_\udcffsecretToken123456"], "the value of --hub_token is not UTF-8 text (byte ff)"),
])
def test_script_flags_that_are_not_utf8(tmp_path, capsys, monkeypatch, script, flags, message):
    module, run = script
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main_with_output(module, [*run, "--output_dir", tmp_path / "out", *flags], capsys)
    assert_one_error_line(code, out, err, message, "retype it in a UTF-8 terminal")
    assert "secret" not in err and list(tmp_path.iterdir()) == []


def test_push_to_hub_with_a_folder_name_that_is_not_utf8(finished_folder, capsys):
    code, out, err = run_main_with_output(push_to_hub, [f"{finished_folder}\udcff"], capsys)
    assert_one_error_line(code, out, err, "argument 1 is not UTF-8 text (byte ff)")


# ---- Recipes


def billion_laughs(levels=9):
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    names = "abcdefghijklmnopqrstuvwxyz"
    for previous, name in zip(names, names[1:levels]):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("content, message", [
    (billion_laughs(), "its aliases (*name) expand to more than 10000 values"),
    ("learning_rate: &a [1, *a]\n", "a value refers to itself"),
    ("seed: " + "[" * 3000 + "]" * 3000 + "\n", "nests its values too deeply"),
])
def test_a_recipe_is_parsed_with_limits(tmp_path, capsys, script, content, message):
    module, _ = script
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(content)
    code, out, err = run_main_with_output(module, [recipe, "--output_dir", tmp_path / "out"], capsys)
    assert_one_error_line(code, out, err, f"recipe file {recipe}", message)
    assert not (tmp_path / "out").exists()


def test_a_recipe_file_too_large_to_be_one_is_not_read(tmp_path, capsys, monkeypatch):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("seed: 1\n" + "#" * (300 * 1024) + "\n")

    def never(*args, **kwargs):
        raise AssertionError("the recipe file was opened")

    monkeypatch.setattr(finetune.cli, "open", never, raising=False)  # what the module's open() finds first
    code, out, err = run_main_with_output(run_glue_sst2, [recipe, "--output_dir", tmp_path / "out"], capsys)
    assert_one_error_line(code, out, err, f"recipe file {recipe} is {recipe.stat().st_size} bytes, more than a "
                                          "recipe holds (at most 256 KiB)")


def test_a_recipe_that_cannot_be_read(tmp_path, capsys, monkeypatch):
    recipe = tmp_path / "locked.yaml"
    recipe.write_text("seed: 1\n")

    def no_permission(path, *args, **kwargs):  # what open() says to a user without read permission
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(finetune.cli, "open", no_permission, raising=False)
    code, out, err = run_main_with_output(run_glue_sst2, [recipe, "--output_dir", tmp_path / "out"], capsys)
    assert_one_error_line(code, out, err, f"recipe file {recipe} cannot be read (Permission denied)")


def test_anchors_and_aliases_within_the_limits_still_work(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("seed: &s 7\ndata_seed: *s\n")
    one_value = type("Action", (), {"nargs": None})()
    assert finetune.cli.recipe_to_flags(str(recipe), {"seed": one_value, "data_seed": one_value}) == [
        "--seed", "7", "--data_seed", "7"]


# ---- The error line comes last, on a line of its own


@pytest.mark.parametrize("leave", [True, False])
def test_the_error_line_ends_a_progress_bar_left_open(capsys, leave):
    print("a result line", end="")  # stdout that was not flushed
    bar = tqdm.tqdm(total=10, file=sys.stderr, mininterval=0, leave=leave)
    bar.update(3)
    with pytest.raises(SystemExit):
        finetune.cli.fail_with("input error", "something is wrong")
    del bar  # what the end of the process does to the bar: it prints nothing more
    captured = capsys.readouterr()
    assert captured.out == "a result line"
    assert captured.err.endswith("\nerror: something is wrong\n")
    assert captured.err.splitlines()[-1] == "error: something is wrong"
