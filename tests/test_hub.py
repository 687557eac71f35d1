"""Hub round trip, offline: push a freshly trained SST-2 model to a local Hub-compatible server, load it back by
name, and check what happens when the push fails (500, 401, 403, no network) and is retried without retraining.

Scripts run in processes of their own, started with the Hub's address (conftest.run_script), because HF_ENDPOINT
must be set before huggingface_hub is imported. They share the session's HF_HOME with this process."""

import contextlib
import io
import json
import os
import re
import shlex
import shutil

import pytest
import yaml

from conftest import REPO_DIR, SAMPLE_DIR, TINY_MODEL, hub_env, run_python, run_script

REPO_ID = "org/tiny-bert-sst2"
TRAIN_ARGS = [
    *TINY_MODEL, "--train_file", SAMPLE_DIR / "sst2_train.tsv", "--validation_file", SAMPLE_DIR / "sst2_dev.tsv",
    "--do_train", "--do_eval", "--max_seq_length", "64", "--per_device_train_batch_size", "32",
    "--learning_rate", "1e-3", "--num_train_epochs", "2", "--logging_steps", "10", "--eval_strategy", "epoch",
    "--save_strategy", "no", "--seed", "42", "--report_to", "none",
    "--max_train_samples", "160",  # 10 steps: a logged loss, an evaluation per epoch, a model to push and compare
    "--bf16", "false",  # fp32 on every CPU, as the quickstart recipe that evaluates the pushed model: equal reports
]
SENTENCES = ["a charming and funny movie", "this movie feels tedious and clumsy", "the cast is great"]


def train_and_push(hub, output_dir, repo_id, *flags, **env):
    return run_script("run_glue_sst2.py", *TRAIN_ARGS, "--output_dir", output_dir, "--push_to_hub",
                      "--hub_model_id", repo_id, *flags, env=hub_env(hub, **env))


def python_output(code, env):
    """Runs `python -c code` (in a process of its own, so HF_ENDPOINT / HF_HUB_OFFLINE apply) and returns its last
    stdout line parsed as JSON."""
    result = run_python("-c", code, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


PREDICT = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
sentences = {sentences!r}
out = {{}}
for name, source in (("hub", {repo_id!r}), ("local", {local!r})):
    if name == "local" and not {compare_local!r}:
        continue
    model = AutoModelForSequenceClassification.from_pretrained(source).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    with torch.no_grad():
        logits = model(**tokenizer(sentences, padding=True, return_tensors="pt")).logits
    out[name] = {{"logits": logits.tolist(), "id2label": {{str(k): v for k, v in model.config.id2label.items()}},
                 "pipeline": pipeline("text-classification", model=source)(sentences)}}
print(json.dumps(out))
"""


def predict_code(local="", compare_local=True):
    return PREDICT.format(sentences=SENTENCES, repo_id=REPO_ID, local=str(local), compare_local=compare_local)


def predict(env, local="", compare_local=True):
    return python_output(predict_code(local, compare_local), env)


def card_of(files):
    text = files["README.md"].decode()
    metadata = yaml.safe_load(text.split("---")[1])
    return text, metadata


def error_line(result):
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return lines[0]


def retry_from(message):
    """The retry command an error message gives, as argv for run_script."""
    command = shlex.split(re.search(r"retry without retraining: (python push_to_hub\.py .*)$", message).group(1))
    assert command[:2] == ["python", "push_to_hub.py"]
    return command[2:]


# ---------------------------------------------------------------------------------------------------------------
# A successful push, then loading by name


COMMITS_OF_THE_RUN = []  # the titles of the pushed repository's commits once the `pushed` run ended


@pytest.fixture(scope="module")
def pushed(hub, tmp_path_factory):
    """The README's push (a bare --hub_private_repo last) of a run that saves a checkpoint every epoch."""
    output_dir = tmp_path_factory.mktemp("sst2") / "out"
    result = train_and_push(hub, output_dir, REPO_ID, "--save_strategy", "epoch", "--hub_private_repo")
    assert result.returncode == 0, result.stderr[-3000:]
    COMMITS_OF_THE_RUN[:] = [commit.title for commit in hub.repos[REPO_ID].commits]
    return output_dir, result


def test_push_to_hub_uploads_once_at_the_end(hub, pushed):
    """Not at every save: one commit after the repository's creation, the finished folder with its card."""
    assert COMMITS_OF_THE_RUN == ["initial commit", "Upload fine-tuned model"]
    assert hub.repos[REPO_ID].private
    text, _ = card_of(hub.files(REPO_ID))
    assert "pushed with this card once the run had completely written its output folder (`--hub_strategy end`)" in text


def test_pushed_files_and_card(hub, pushed):
    output_dir, result = pushed
    files = hub.files(REPO_ID)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                 "training_args.bin", "README.md", "all_results.json", "trainer_state.json"):
        assert name in files, sorted(files)
    assert not any(name.startswith(("checkpoint-", "runs/")) or name == "eval_failures.tsv" for name in files)
    assert files["model.safetensors"] == (output_dir / "model.safetensors").read_bytes()

    config = json.loads(files["config.json"])
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}

    text, metadata = card_of(files)
    assert metadata["pipeline_tag"] == "text-classification"
    assert metadata["library_name"] == "transformers" and metadata["language"] == "en" and metadata["tags"]
    assert "base_model" not in metadata  # trained from a local config: no Hub id to name
    [result_entry] = metadata["model-index"][0]["results"]
    metric_values = {m["type"]: m["value"] for m in result_entry["metrics"]}
    eval_accuracy = json.loads((output_dir / "eval_results.json").read_text())["eval_accuracy"]
    assert metric_values["accuracy"] == pytest.approx(eval_accuracy, abs=1e-4)
    for section in ("## How to use", f'pipeline("text-classification", model="{REPO_ID}")',
                    "## Training hyperparameters", "learning_rate: 0.001", "## Training results",
                    "| Training Loss |", "## Reproduce", "python run_glue_sst2.py", "## Framework versions"):
        assert section in text, section

    # No local path and no token anywhere in what was published or printed.
    for name, content in files.items():
        if name.endswith((".json", ".md", ".txt")):
            published = content.decode()
            assert str(output_dir) not in published and str(REPO_DIR) not in published, name
            assert os.path.expanduser("~") + "/" not in published, name
        assert hub.token.encode() not in content, name
    assert hub.token not in result.stdout + result.stderr


def test_load_by_name_matches_local(hub, pushed):
    output_dir, _ = pushed
    out = predict(hub_env(hub), local=output_dir)
    assert out["hub"]["id2label"] == {"0": "negative", "1": "positive"}
    assert out["hub"]["logits"] == out["local"]["logits"]
    assert out["hub"]["pipeline"] == out["local"]["pipeline"]
    assert {p["label"] for p in out["hub"]["pipeline"]} <= {"negative", "positive"}


def test_scripts_take_the_pushed_model_by_name_for_eval_and_predict(hub, pushed, tmp_path):
    """--model_name_or_path org/name (+ --model_revision) through the Hub client: same metrics and predictions as
    the local output folder the model was pushed from."""
    output_dir, _ = pushed
    result = run_script("run_glue_sst2.py", "recipes/sst2/quickstart.yaml", "--model_name_or_path", REPO_ID,
                        "--model_revision", "main", "--config_name", "", "--tokenizer_name", "", "--do_train", "false",
                        "--output_dir", tmp_path / "by-name", env=hub_env(hub))
    assert result.returncode == 0, result.stderr[-3000:]
    by_name = json.loads((tmp_path / "by-name/eval_results.json").read_text())
    local = json.loads((output_dir / "eval_results.json").read_text())
    assert by_name["eval_accuracy"] == local["eval_accuracy"]
    # the misclassified sentences with their probabilities: the same model gives the same report
    assert (tmp_path / "by-name/eval_failures.tsv").read_text() == (output_dir / "eval_failures.tsv").read_text()
    assert len((tmp_path / "by-name/predict_results.tsv").read_text().splitlines()) == 41  # header + 40 sentences


def test_hub_strategy_checkpoint_makes_a_run_resumable_from_the_hub(hub, tmp_path):
    """--hub_strategy checkpoint: the Trainer pushes last-checkpoint/ while training; a machine that lost its disk
    downloads it and resumes from it."""
    repo_id = "org/resumable"
    run = [*TRAIN_ARGS, "--save_strategy", "steps", "--save_steps", "10", "--max_steps", "20", "--do_eval", "false"]
    result = run_script("run_glue_sst2.py", *run, "--output_dir", tmp_path / "first", "--push_to_hub",
                        "--hub_model_id", repo_id, "--hub_strategy", "checkpoint", env=hub_env(hub))
    assert result.returncode == 0, result.stderr[-3000:]
    files = hub.files(repo_id)
    assert "last-checkpoint/trainer_state.json" in files and "last-checkpoint/optimizer.pt" in files
    download = f"""
from huggingface_hub import snapshot_download
print(snapshot_download({repo_id!r}, allow_patterns=["last-checkpoint/*"], local_dir={str(tmp_path / "dl")!r}))
"""
    downloaded = run_python("-c", download, env=hub_env(hub))
    assert downloaded.returncode == 0, downloaded.stderr[-3000:]
    checkpoint = tmp_path / "dl/last-checkpoint"
    # The Trainer skips a checkpoint push while the previous one is still uploading: step 10 or 20 arrives.
    step = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
    assert step in (10, 20)
    result = run_script("run_glue_sst2.py", *run, "--max_steps", "30", "--output_dir", tmp_path / "second",
                        "--resume_from_checkpoint", checkpoint)
    assert result.returncode == 0, result.stderr[-3000:]
    first = json.loads((tmp_path / "first/trainer_state.json").read_text())["log_history"]
    second = json.loads((tmp_path / "second/trainer_state.json").read_text())
    assert second["global_step"] == 30
    # the steps up to the checkpoint come from it (a fresh 30-step run would log other losses and learning rates:
    # its schedule is longer)
    assert [e for e in second["log_history"] if e["step"] <= step and "loss" in e] == \
        [e for e in first if e["step"] <= step and "loss" in e]


def test_load_by_name_from_prefilled_cache_offline(hub, pushed):
    from huggingface_hub import constants

    online = predict(hub_env(hub), compare_local=False)  # fills the session's HF_HOME cache
    # This process is offline and its endpoint is not the loopback Hub, the only place the model was pushed to: the
    # model can come from the cache and from nowhere else.
    assert constants.HF_HUB_OFFLINE and constants.ENDPOINT != hub.url
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(predict_code(compare_local=False), {})
    offline = json.loads(printed.getvalue().strip().splitlines()[-1])
    assert offline["hub"] == online["hub"]


# ---------------------------------------------------------------------------------------------------------------
# Failed pushes: clear error, model intact, retry without retraining


def test_server_error_then_retry_without_retraining(hub, tmp_path):
    output_dir = tmp_path / "out"
    repo_id = "org/tiny-bert-sst2-retry"
    hub.fail_next(1, status=500, path_contains="/api/whoami-v2")  # the Trainer never calls whoami; our push does
    result = train_and_push(hub, output_dir, repo_id)
    assert result.returncode != 0
    message = error_line(result)
    assert "500" in message and "push_to_hub.py" in message and str(output_dir) in message
    assert hub.token not in result.stdout + result.stderr
    assert (output_dir / "model.safetensors").exists() and (output_dir / "eval_results.json").exists()
    assert (output_dir / "README.md").exists()
    assert "README.md" not in hub.files(repo_id)  # nothing was pushed
    weights_mtime = (output_dir / "model.safetensors").stat().st_mtime_ns

    retry = run_script("push_to_hub.py", *retry_from(message), env=hub_env(hub))
    assert retry.returncode == 0, retry.stderr[-3000:]
    assert (output_dir / "model.safetensors").stat().st_mtime_ns == weights_mtime  # not retrained
    files = hub.files(repo_id)
    assert files["model.safetensors"] == (output_dir / "model.safetensors").read_bytes()
    assert f'model="{repo_id}"' in files["README.md"].decode()
    assert "trainer_state.json" in files and "training_args.bin" in files


def test_wrong_token_is_a_clear_401(hub, pushed):
    output_dir, _ = pushed
    wrong = "hf_WrongTokenWrongTokenWrongToken01"
    before = sorted(p.name for p in output_dir.iterdir())
    result = run_script("push_to_hub.py", output_dir, "--hub_model_id", REPO_ID,
                        env=hub_env(hub, HF_TOKEN=wrong))
    assert result.returncode == 2
    message = error_line(result)
    assert "401" in message and "token" in message and "push_to_hub.py" in message
    assert wrong not in result.stdout + result.stderr
    assert sorted(p.name for p in output_dir.iterdir()) == before

    again = run_script("push_to_hub.py", output_dir, "--hub_model_id", REPO_ID, env=hub_env(hub))
    assert again.returncode == 0, again.stderr[-3000:]


def test_name_taken_by_someone_else_is_a_clear_403(hub, pushed):
    output_dir, _ = pushed
    hub.create_repo("someone-else/taken", owner="someone-else")
    result = run_script("push_to_hub.py", output_dir, "--hub_model_id", "someone-else/taken",
                        env=hub_env(hub))
    assert result.returncode == 2
    message = error_line(result)
    assert "403" in message and "another --hub_model_id" in message
    assert "README.md" not in hub.files("someone-else/taken")


def test_no_network_is_a_clear_error(hub, pushed, no_network_env):
    output_dir, _ = pushed
    result = run_script("push_to_hub.py", output_dir, "--hub_model_id", REPO_ID,
                        env={**hub_env(hub), **no_network_env})
    assert result.returncode == 2
    message = error_line(result)
    assert "could not reach the Hub" in message and "push_to_hub.py" in message


def test_push_under_another_name_updates_the_card(hub, pushed):
    output_dir, _ = pushed
    result = run_script("push_to_hub.py", output_dir, "--hub_model_id", "org/renamed", env=hub_env(hub))
    assert result.returncode == 0, result.stderr[-3000:]
    text, metadata = card_of(hub.files("org/renamed"))
    assert 'model="org/renamed"' in text and metadata["model-index"][0]["name"] == "org/renamed"
    assert REPO_ID not in text


def test_hub_token_flag_never_published(hub, tmp_path):
    """--hub_token on the command line must not end up in the card, the logs or a pickled training_args.bin."""
    output_dir = tmp_path / "out"
    env = hub_env(hub)
    env.pop("HF_TOKEN")
    result = run_script("run_glue_sst2.py", *TRAIN_ARGS, "--output_dir", output_dir, "--push_to_hub",
                        "--hub_model_id", "org/token-flag", "--hub_token", hub.token, env={**env, "HF_TOKEN": ""})
    assert hub.token not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    for name, content in hub.files("org/token-flag").items():
        assert hub.token.encode() not in content, name


# ---------------------------------------------------------------------------------------------------------------
# A README.md the user put in the output folder is never overwritten, pushed or not

USER_README = "# My notes\n\nlearning rate 1e-3 looked best\n"


def assert_card_pushed_and_user_readme_kept(hub, output_dir, repo_id):
    assert (output_dir / "README.md").read_text() == USER_README
    files = hub.files(repo_id)
    text, _ = card_of(files)
    assert "model card written by the finetune recipes" in text and f'model="{repo_id}"' in text
    assert "MODEL_CARD.md" not in files and not any(b"My notes" in content for content in files.values())
    return text


def test_user_readme_survives_a_failed_training_push_and_its_retry(hub, tmp_path):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "README.md").write_text(USER_README)
    repo_id = "org/user-readme-train"
    hub.fail_next(1, status=500, path_contains="/api/whoami-v2")
    result = run_script("run_glue_sst2.py", *TRAIN_ARGS, "--output_dir", output_dir, "--overwrite_output_dir",
                        "--push_to_hub", "--hub_model_id", repo_id, env=hub_env(hub))
    assert result.returncode != 0
    message = error_line(result)
    assert (output_dir / "README.md").read_text() == USER_README
    assert "was not written by this project" in result.stderr and "MODEL_CARD.md" in result.stderr

    retry = run_script("push_to_hub.py", *retry_from(message), env=hub_env(hub))
    assert retry.returncode == 0, retry.stderr[-3000:]
    text = assert_card_pushed_and_user_readme_kept(hub, output_dir, repo_id)
    assert "## Reproduce" in text  # the card the training run wrote, not one rebuilt from the folder


def test_pushes_during_training_skip_predictions_and_the_users_readme(hub, tmp_path):
    """--hub_strategy every_save uploads the output folder at every save: never the evaluation's predictions (they
    quote the data) nor a README.md of the user's, in any commit of the history."""
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "README.md").write_text(USER_README)
    repo_id = "org/squad-every-save"
    result = run_script("run_squad.py", "recipes/squad/quickstart.yaml", "--output_dir", output_dir,
                        "--num_train_epochs", 2, "--eval_strategy", "epoch", "--save_strategy", "epoch",
                        "--do_predict", "false", "--push_to_hub", "--hub_model_id", repo_id,
                        "--hub_strategy", "every_save", "--hub_always_push", "true",
                        "--overwrite_output_dir",  # the folder holds the user's README.md: a new run must say so
                        env=hub_env(hub))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (output_dir / "eval_predictions.json").exists()  # written by the evaluations during training
    commits = hub.repos[repo_id].commits
    assert any(c.title.startswith("Training in progress") for c in commits)
    for commit in commits:
        assert not any("predictions" in path or "nbest" in path or "failures" in path for path in commit.files), \
            (commit.title, sorted(commit.files))
        assert not any(b"My notes" in content for content in commit.files.values()), commit.title
    text, _ = card_of(hub.files(repo_id))
    assert "model card written by the finetune recipes" in text and f'model="{repo_id}", trust_remote_code=True' in text
    assert "the Trainer also pushed the output folder at every save (`--hub_strategy every_save`" in text


def test_a_run_without_push_writes_the_full_card_that_push_to_hub_pushes_later(hub, tmp_path):
    """As the transformers examples do without --push_to_hub: the card is written at the end of training, so a later
    push_to_hub.py publishes the hyper-parameters, the results and the command, not a card rebuilt from the folder."""
    output_dir = tmp_path / "out"
    result = run_script("run_glue_sst2.py", *TRAIN_ARGS, "--output_dir", output_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    card = (output_dir / "README.md").read_text()
    for part in ("model card written by the finetune recipes", "- learning_rate: 0.001", "## Training results",
                 "## Reproduce"):
        assert part in card
    pushed = run_script("push_to_hub.py", output_dir, "--hub_model_id", "org/pushed-later", env=hub_env(hub))
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    text, metadata = card_of(hub.files("org/pushed-later"))
    assert "- learning_rate: 0.001" in text and "## Reproduce" in text and 'model="org/pushed-later"' in text
    assert metadata["model-index"][0]["name"] == "org/pushed-later" and "\n# pushed-later\n" in text


def test_push_to_hub_adds_the_base_models_license_a_card_written_offline_lacks(hub):
    from hub_server import _new_commit

    repo = hub.create_repo("org/licensed-base")
    repo.commits.append(_new_commit("card", {**repo.head.files, "README.md": b"---\nlicense: mit\n---\n# base\n"},
                                    repo.head.oid))
    card = "---\nbase_model: org/licensed-base\nlanguage: en\n---\n\n# model\n"
    code = f"import json; from push_to_hub import with_base_model_license; print(json.dumps(with_base_model_license({card!r})))"
    assert python_output(code, hub_env(hub)) == card.replace("---\n", "---\nlicense: mit\n", 1)
    assert python_output(code.replace("licensed-base", "unknown-base"), hub_env(hub)) == \
        card.replace("licensed-base", "unknown-base")


def test_renaming_a_card_touches_only_the_repo_id(tmp_path):
    """A card written without a push names the output folder: "out" must not change inside "without" or a path."""
    import run_squad
    from finetune.card import build_model_card
    from push_to_hub import renamed_card

    (tmp_path / "config.json").write_text("{}")
    argv = ["run_squad.py", "--output_dir", str(tmp_path / "out"), "--learning_rate", "3e-5"]
    card = build_model_card(tmp_path, "out", run_squad.CARDS[False], argv=argv) + "\nTrained without outside help.\n"
    assert renamed_card(card, "out", "org/squad-out") == build_model_card(
        tmp_path, "org/squad-out", run_squad.CARDS[False], argv=argv) + "\nTrained without outside help.\n"


def test_user_readme_survives_push_to_hub(hub, pushed, tmp_path, no_network_env):
    output_dir = tmp_path / "copy"
    shutil.copytree(pushed[0], output_dir)
    (output_dir / "README.md").write_text(USER_README)  # replaces the card of the earlier push
    repo_id = "org/user-readme-push"
    failed = run_script("push_to_hub.py", output_dir, "--hub_model_id", repo_id,
                        env={**hub_env(hub), **no_network_env})
    assert failed.returncode == 2
    assert (output_dir / "README.md").read_text() == USER_README
    result = run_script("push_to_hub.py", output_dir, "--hub_model_id", repo_id, env=hub_env(hub))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_card_pushed_and_user_readme_kept(hub, output_dir, repo_id)


def test_card_goes_where_it_replaces_only_our_own_card(tmp_path):
    from finetune.hub import PushError, card_path, write_card

    assert card_path(tmp_path) == tmp_path / "README.md"
    write_card(tmp_path, "<!-- model card written by the finetune recipes; repo_id: org/a -->\n")
    assert card_path(tmp_path) == tmp_path / "README.md"  # our earlier card is replaced
    (tmp_path / "README.md").write_text(USER_README)
    assert write_card(tmp_path, "<!-- model card written by the finetune recipes; repo_id: org/b -->\n") == \
        tmp_path / "MODEL_CARD.md"
    assert (tmp_path / "README.md").read_text() == USER_README
    (tmp_path / "MODEL_CARD.md").write_text("my other notes\n")
    with pytest.raises(PushError, match="rename MODEL_CARD.md"):
        card_path(tmp_path)
    assert (tmp_path / "MODEL_CARD.md").read_text() == "my other notes\n"


# ---------------------------------------------------------------------------------------------------------------
# Model card pieces (no server needed)


def test_base_model_is_a_hub_id_never_a_local_path(tmp_path):
    from finetune.card import base_model_hub_id, public_command

    assert base_model_hub_id("google-bert/bert-base-cased") == "google-bert/bert-base-cased"
    assert base_model_hub_id(None) is None
    plain = tmp_path / "my-bert"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    assert base_model_hub_id(str(plain)) is None
    (plain / "README.md").write_text("---\nbase_model: google-bert/bert-base-cased\n---\n# card\n")
    assert base_model_hub_id(str(plain)) == "google-bert/bert-base-cased"
    snapshot = tmp_path / "hub" / "models--google-bert--bert-base-uncased" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert base_model_hub_id(str(snapshot)) == "google-bert/bert-base-uncased"

    command = public_command(
        [str(REPO_DIR / "run_glue_sst2.py"), "recipes/sst2/quickstart.yaml", "--model_name_or_path", str(plain),
         "--output_dir", "/home/someone/runs/out", "--hub_token", "hf_SecretSecretSecretSecret00",
         "--train_file", str(tmp_path / "train.tsv")],
        base_hub_id="google-bert/bert-base-cased", hub_model_id="org/x")
    assert command.startswith("python run_glue_sst2.py recipes/sst2/quickstart.yaml")
    assert "--model_name_or_path google-bert/bert-base-cased" in command
    assert "hf_Secret" not in command and "--hub_token" not in command
    assert "/home/someone" not in command and str(tmp_path) not in command
    assert "--push_to_hub --hub_model_id org/x" in command


def test_squad_card_metrics(tmp_path):
    import run_squad
    from finetune.card import build_model_card

    (tmp_path / "config.json").write_text("{}")
    log_history = [{"loss": 2.5, "step": 50, "epoch": 0.5}, {"eval_exact": 61.0, "eval_f1": 64.5, "step": 100,
                                                             "epoch": 1.0, "eval_runtime": 3.0}]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": log_history}))
    card = build_model_card(tmp_path, "org/bert-squad", run_squad.CARDS[True],
                            model_name_or_path="google-bert/bert-base-cased", metrics={"eval_exact": 71.5, "eval_f1": 74.25, "eval_HasAns_exact": 70.0},
                            dataset_name="rajpurkar/squad_v2", argv=None, license="apache-2.0")
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["base_model"] == "google-bert/bert-base-cased" and metadata["license"] == "apache-2.0"
    assert metadata["datasets"] == ["rajpurkar/squad_v2"] and metadata["pipeline_tag"] == "question-answering"
    metrics = {m["type"]: m["value"] for m in metadata["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"exact_match": 71.5, "f1": 74.25}
    assert 'pipeline("question-answering", model="org/bert-squad", trust_remote_code=True)' in card
    assert "No-answer threshold" not in card  # none stored in this config.json
    (tmp_path / "config.json").write_text(json.dumps({"null_score_diff_threshold": -1.25}))
    card = build_model_card(tmp_path, "org/bert-squad", run_squad.CARDS[True], argv=None)
    assert "No-answer threshold: -1.25" in card
    # SQuAD's evaluation has no loss: the training results table still has its rows
    assert "| Training Loss | Epoch | Step | Exact | F1 |" in card and "| 2.5000 | 1.0 | 100 | 61.0000 | 64.5000 |" in card


def test_card_names_the_local_files_a_run_read_not_the_recipes_hub_dataset(tmp_path):
    """A recipe keeps its dataset_name while every split comes from a file: the card names the files, not the Hub id."""
    import run_glue_sst2
    from finetune.arguments import ModelArguments, TrainingArguments
    from finetune.card import build_model_card
    from finetune.cli import parse_args
    from finetune.tasks.text_classification import glue_task

    (tmp_path / "config.json").write_text("{}")
    recipe = ["recipes/sst2/quickstart.yaml", "--dataset_name", "nyu-mll/glue", "--dataset_config_name", "sst2",
              "--output_dir", str(tmp_path)]
    types = (ModelArguments, run_glue_sst2.DataArguments, TrainingArguments)
    _, data_args, training_args = parse_args(types, recipe)
    card = build_model_card(tmp_path, "org/x", glue_task("sst2").card, training_args=training_args, data_args=data_args)
    assert "nyu-mll/glue" not in card and "datasets:" not in card
    sizes = {name: (SAMPLE_DIR / name).stat().st_size for name in ("sst2_train.tsv", "sst2_dev.tsv", "sst2_test.tsv")}
    assert (f"on the local files `sst2_train.tsv` ({sizes['sst2_train.tsv']:,} bytes, training), `sst2_dev.tsv` "
            f"({sizes['sst2_dev.tsv']:,} bytes, evaluation), `sst2_test.tsv` ({sizes['sst2_test.tsv']:,} bytes, "
            "prediction).") in card
    assert str(SAMPLE_DIR) not in card
    _, data_args, training_args = parse_args(types, [*recipe, "--train_file", ""])  # training data from the Hub
    card = build_model_card(tmp_path, "org/x", glue_task("sst2").card, training_args=training_args, data_args=data_args)
    assert "[nyu-mll/glue](https://huggingface.co/datasets/nyu-mll/glue) (`sst2`) and the local files `sst2_dev.tsv`" \
        in card and "datasets:\n- nyu-mll/glue" in card
