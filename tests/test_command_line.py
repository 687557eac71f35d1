"""The command line as the README and --help describe it: boolean flags bare or with a value, an empty value that
unsets a recipe's key, the transformers examples' flags, the from-scratch line, and starting over in a folder."""

import argparse
import json

import pytest

import run_glue_sst2
import run_squad
from conftest import REPO_DIR, run_main_in_process
from finetune.arguments import ModelArguments, TrainingArguments
from finetune.cli import InputError, bool_argument, parse_args

SST2_QUICKSTART = str(REPO_DIR / "recipes/sst2/quickstart.yaml")
SCRIPTS = {"run_glue_sst2": (run_glue_sst2, (ModelArguments, run_glue_sst2.DataArguments, TrainingArguments)),
           "run_squad": (run_squad, (ModelArguments, run_squad.DataArguments, run_squad.SquadTrainingArguments))}
RECIPES = {"run_glue_sst2": SST2_QUICKSTART, "run_squad": str(REPO_DIR / "recipes/squad/quickstart.yaml")}


@pytest.fixture(params=sorted(SCRIPTS))
def script(request):
    return request.param


def parsed(script, *flags, recipe=True):
    arguments = [RECIPES[script]] * recipe + ["--output_dir", "/tmp/unused", *map(str, flags)]
    model_args, data_args, training_args = parse_args(SCRIPTS[script][1], arguments)
    return model_args, data_args, training_args


def test_boolean_flags_work_bare_and_with_a_value(script):
    """Fields whose default is None (chosen for the machine later) took no bare form: `--bf16` alone failed."""
    _, data_args, args = parsed(script, "--hub_private_repo", "--pad_to_max_length", "--torch_compile", "--bf16",
                                "false", "--do_predict", "--disable_tqdm")
    assert args.hub_private_repo is True and data_args.pad_to_max_length is True and args.torch_compile is True
    assert args.bf16 is False and args.do_predict is True and args.disable_tqdm is True
    if not TrainingArguments(output_dir="/tmp/unused").tf32:  # no tf32 here: a bare --tf32 asks for it
        with pytest.raises(InputError, match="--tf32 requires Ampere"):
            parsed(script, "--tf32", "--do_predict")
    _, data_args, args = parsed(script, "--hub_private_repo", "true", "--pad_to_max_length", "no", "--torch_compile=0")
    assert args.hub_private_repo is True and data_args.pad_to_max_length is False and args.torch_compile is False


def test_an_empty_value_unsets_a_recipes_key_numbers_too(script):
    _, _, recipe = parsed(script)
    assert recipe.save_total_limit == 1 and recipe.cpu_threads == 1
    _, _, args = parsed(script, "--save_total_limit", "", "--cpu_threads=", "--save_strategy", "")
    assert args.save_total_limit is None and args.cpu_threads is None and args.save_strategy == "steps"
    _, _, args = parsed(script, "--save_total_limit", "", "--save_total_limit", 3)  # a later value still wins
    assert args.save_total_limit == 3
    model_args, _, _ = parsed(script, "--tokenizer_name", "")
    assert model_args.tokenizer_name == "assets/tiny-bert"  # from scratch: the tokenizer of the config's folder


def test_push_happens_at_the_end_unless_asked(script):
    assert parsed(script)[2].hub_strategy == "end"
    assert parsed(script, "--hub_strategy", "checkpoint")[2].hub_strategy == "checkpoint"


def test_the_examples_flags_are_taken_or_refused_naming_ours(script):
    with pytest.raises(InputError, match=r"^--token is a flag of the transformers examples, .*--hub_token"):
        parsed(script, "--token", "hf_SomeTokenSomeTokenSomeToken")
    with pytest.raises(InputError, match="its name is --eval_strategy"):
        parsed(script, "--evaluation_strategy", "epoch")
    _, _, args = parsed(script, "--overwrite_cache", "--learning_rate", "0.5", "--overwrite-cache", "true")
    assert args.learning_rate == 0.5


def test_help_starts_with_the_recipe_and_how_overrides_work(script, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(SCRIPTS[script][1], ["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: ") and "[RECIPE.yaml] [--key value ...]" in text.splitlines()[0]
    assert "overrides the recipe's" in text and "(--bf16)" in text and "--token: " in text


def test_push_to_hub_takes_its_boolean_bare_or_with_a_value():
    parser = argparse.ArgumentParser()
    bool_argument(parser, "--hub_private_repo")
    parser.add_argument("output_dir")
    assert parser.parse_args(["out", "--hub_private_repo"]).hub_private_repo is True
    assert parser.parse_args(["--hub_private_repo", "false", "out"]).hub_private_repo is False
    assert parser.parse_args(["out"]).hub_private_repo is False


def test_the_readmes_from_scratch_line_trains(tmp_path, capsys):
    """`--model_name_or_path "" --config_name PATH`, no --tokenizer_name: the config's folder holds the tokenizer."""
    recipe = tmp_path / "hub-model.yaml"
    recipe.write_text((REPO_DIR / "recipes/sst2/quickstart.yaml").read_text()
                      .replace("config_name:", "model_name_or_path: org/unreachable\nconfig_name:")
                      .replace("tokenizer_name: assets/tiny-bert\n", ""))
    code, err = run_main_in_process(run_glue_sst2, [
        recipe, "--model_name_or_path", "", "--config_name", REPO_DIR / "assets/tiny-bert", "--max_steps", 2,
        "--do_eval", "false", "--do_predict", "false", "--save_strategy", "no", "--output_dir", tmp_path / "out"],
        capsys)
    assert code == 0, err
    assert (tmp_path / "out/model.safetensors").is_file() and (tmp_path / "out/tokenizer.json").is_file()


def test_starting_over_in_a_quickstart_folder(tmp_path, capsys):
    """The quickstart recipe keeps one checkpoint (save_total_limit 1): --overwrite_output_dir starts a new run over
    the earlier run's checkpoints, and the user's own files stay."""
    output_dir = tmp_path / "quickstart"
    run = [SST2_QUICKSTART, "--num_train_epochs", 2, "--max_train_samples", 64, "--do_eval", "false",
           "--do_predict", "false", "--output_dir", output_dir]
    code, err = run_main_in_process(run_glue_sst2, run, capsys)
    assert code == 0, err
    (output_dir / "notes.txt").write_text("mine")
    code, err = run_main_in_process(run_glue_sst2, [*run, "--learning_rate", "5e-4"], capsys)
    assert code == 2 and "pass --overwrite_output_dir to start over" in err, err
    code, err = run_main_in_process(run_glue_sst2, [*run, "--learning_rate", "5e-4", "--overwrite_output_dir"],
                                    capsys)
    assert code == 0, err
    assert "Resuming" not in err
    assert (output_dir / "notes.txt").read_text() == "mine"
    assert [p.name for p in output_dir.glob("checkpoint-*")] == ["checkpoint-4"]  # the new run's, rotated to one
    assert json.loads((output_dir / ".run.json").read_text())["definition"]["learning_rate"] == 5e-4


def test_bare_flags_reach_the_scripts_main(capsys, tmp_path):
    """The README's push line ends in a bare --hub_private_repo: argparse must not take the next flag as its value."""
    code, err = run_main_in_process(run_glue_sst2, [
        SST2_QUICKSTART, "--push_to_hub", "--hub_private_repo", "--output_dir", tmp_path / "out"], capsys)
    assert code == 2 and "HF_HUB_OFFLINE=1 is set" in err, err  # refused for being offline, not for the flag


def test_disable_tqdm_silences_every_bar(tmp_path, capsys):
    """The Trainer's bars, and datasets' (tokenization) and transformers' (loading the weights) too."""
    import datasets
    import huggingface_hub
    import transformers

    model = tmp_path / "model"
    run = [SST2_QUICKSTART, "--do_train", "false", "--do_predict", "false", "--preprocessing_num_workers", 1,
           "--config_name", "", "--tokenizer_name", "", "--model_name_or_path", model]
    code, err = run_main_in_process(run_glue_sst2, [SST2_QUICKSTART, "--max_steps", 2, "--save_strategy", "no",
                                                    "--do_eval", "false", "--do_predict", "false",
                                                    "--output_dir", model], capsys)
    assert code == 0, err
    try:
        code, err = run_main_in_process(run_glue_sst2, [*run, "--output_dir", tmp_path / "bars"], capsys)
        assert code == 0 and "Tokenizing validation" in err and "Loading weights" in err, err
        code, err = run_main_in_process(run_glue_sst2, [*run, "--output_dir", tmp_path / "quiet", "--disable_tqdm"],
                                        capsys)
        assert code == 0, err
        assert "Tokenizing" not in err and "Loading weights" not in err and "it/s" not in err, err
    finally:  # the switches are the process's: the next test starts with the bars on
        datasets.enable_progress_bars()
        transformers.utils.logging.enable_progress_bar()
        huggingface_hub.utils.enable_progress_bars()


def test_push_to_hub_offline_names_offline_mode(tmp_path, capsys, monkeypatch):
    """Offline, huggingface_hub looks for a token before it refuses to connect: "no Hub token found" misled."""
    import push_to_hub

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    code, err = run_main_in_process(push_to_hub, [tmp_path, "--hub_model_id", "me/x", "--hub_private_repo"], capsys)
    assert code == 2 and "HF_HUB_OFFLINE=1 is set, so nothing can be pushed" in err and "no Hub token" not in err, err
