"""What a run loads is checked before it is used: a model folder without its tokenizer files, a tokenizer larger than
the model's embeddings, an evaluation of layers the weights do not hold (a new head, or a model built from a config),
and a run asked to do nothing: one error line naming the folder and the fix, exit code 2, nothing written."""

import pytest
from conftest import SAMPLE_DIR, TINY_MODEL, run_main_with_output, saved_tiny_model

import run_glue_sst2
import run_squad
from finetune.errors import InputError
from utils_qa import qa_pipeline

SST2_EVAL = ["--validation_file", SAMPLE_DIR / "sst2_dev.tsv", "--do_eval", "--max_eval_samples", 8,
             "--max_seq_length", 32, "--report_to", "none", "--disable_tqdm", "true"]
SQUAD_EVAL = ["--validation_file", SAMPLE_DIR / "squad_dev.json", "--do_eval", "--max_eval_samples", 4,
              "--max_seq_length", 64, "--doc_stride", 16, "--max_query_length", 16, "--report_to", "none",
              "--disable_tqdm", "true"]
SST2_LABELS = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1},
               "finetuning_task": "sst2"}
SCRIPTS = {"run_glue_sst2": (run_glue_sst2, SST2_EVAL, "AutoModelForSequenceClassification"),
           "run_squad": (run_squad, SQUAD_EVAL, "AutoModelForQuestionAnswering")}


@pytest.fixture(params=sorted(SCRIPTS))
def script(request):
    return SCRIPTS[request.param]


def run(module, argv, capsys):
    capsys.readouterr()  # (what making the model folder printed)
    return run_main_with_output(module, argv, capsys)


def assert_refused(code, out, err, output_dir, *messages):
    """One error line, the last (loading a model may show its progress bar above it), and nothing written."""
    lines = err.strip().splitlines()
    assert code == 2 and [line for line in lines if "error" in line] == lines[-1:], err
    assert lines[-1].startswith("error: ") and "Traceback" not in out + err
    for message in messages:
        assert message in lines[-1], err
    assert not output_dir.exists()


def test_a_model_folder_without_tokenizer_files(tmp_path, capsys, script):
    """Loading it gives a tokenizer of the 5 special tokens, which reads every word as [UNK]."""
    module, evaluation, auto_class = script
    model = saved_tiny_model(tmp_path / "model", auto_class, tokenizer=False)
    code, out, err = run(module, ["--model_name_or_path", model, *evaluation, "--output_dir", tmp_path / "out"],
                         capsys)
    assert_refused(code, out, err, tmp_path / "out", f"{model} has no tokenizer files",
                   "read every word as [UNK]", "copy the tokenizer files of the model it was trained from into it")


def test_a_tokenizer_larger_than_the_models_embeddings(tmp_path, capsys, script):
    module, evaluation, auto_class = script
    model = saved_tiny_model(tmp_path / "model", auto_class, vocab_size=300)  # the tokenizer has 489 tokens
    code, out, err = run(module, ["--model_name_or_path", model, *evaluation, "--output_dir", tmp_path / "out"],
                         capsys)
    assert_refused(code, out, err, tmp_path / "out", f"the tokenizer of {model} has 489 tokens but the model",
                   "embeds only 300", "give the tokenizer the model was trained with")


def test_evaluating_a_head_the_weights_do_not_hold(tmp_path, capsys, script):
    """A base model's folder (no classifier or qa_outputs layer): without training, its new head's random weights
    would be reported as a result."""
    module, evaluation, _ = script
    model = saved_tiny_model(tmp_path / "model", "AutoModel")
    for flags in ([], ["--do_train", "false", "--do_predict", "false"]):
        code, out, err = run(module, ["--model_name_or_path", model, *evaluation, *flags, "--output_dir",
                                      tmp_path / "out"], capsys)
        head = "classifier.bias, classifier.weight" if module is run_glue_sst2 else "qa_outputs.bias, qa_outputs.weight"
        assert_refused(code, out, err, tmp_path / "out", f"{model} holds no weights for {head}",
                       "chance-level results", "pass --do_train to train them")


def test_evaluating_a_model_built_from_a_config(tmp_path, capsys, script):
    module, evaluation, _ = script
    code, out, err = run(module, [*TINY_MODEL, *evaluation, "--output_dir", tmp_path / "out"], capsys)
    assert_refused(code, out, err, tmp_path / "out", "no --model_name_or_path", "would have random weights",
                   "pass --do_train")


def test_a_model_with_every_layer_evaluates(tmp_path, capsys, script):
    """The checks above refuse only what is missing: a complete folder is evaluated."""
    module, evaluation, auto_class = script
    model = saved_tiny_model(tmp_path / "model", auto_class, **(SST2_LABELS if module is run_glue_sst2 else {}))
    code, out, err = run(module, ["--model_name_or_path", model, *evaluation, "--output_dir", tmp_path / "out"],
                         capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "eval_results.json").exists()


def test_a_head_for_another_number_of_labels(tmp_path, capsys):
    """A classifier of two classes read as a regression (its labels are the placeholders LABEL_0, LABEL_1): one line,
    not transformers' traceback."""
    model = saved_tiny_model(tmp_path / "model", "AutoModelForSequenceClassification")
    code, out, err = run(run_glue_sst2, ["--model_name_or_path", model, *SST2_EVAL, "--output_dir", tmp_path / "out"],
                         capsys)
    assert_refused(code, out, err, tmp_path / "out", f"the weights of {model} do not fit the model this run builds",
                   "classifier.bias is [2] there, [1] here")


@pytest.mark.parametrize("flags", [["--eval_strategy", "steps"], ["--eval_strategy", "epoch", "--do_train", "false"]])
def test_a_run_asked_to_do_nothing(tmp_path, capsys, script, flags):
    """--eval_strategy evaluates during a training; the Trainer also turns --do_eval on with it."""
    module, evaluation, auto_class = script
    model = saved_tiny_model(tmp_path / "model", auto_class)
    asked = [arg for arg in evaluation if arg != "--do_eval"]
    code, out, err = run(module, ["--model_name_or_path", model, *asked, *flags, "--output_dir", tmp_path / "out"],
                         capsys)
    assert_refused(code, out, err, tmp_path / "out", "nothing to do: pass --do_train, --do_eval and/or --do_predict")


def test_the_pipeline_refuses_a_folder_without_tokenizer_files(tmp_path):
    model = saved_tiny_model(tmp_path / "model", "AutoModelForQuestionAnswering", tokenizer=False)
    with pytest.raises(InputError, match="has no tokenizer files .*every word would be read as \\[UNK\\]"):
        qa_pipeline(model)
    larger = saved_tiny_model(tmp_path / "larger", "AutoModelForQuestionAnswering", vocab_size=300)
    with pytest.raises(InputError, match="has 489 tokens but its model embeds only 300"):
        qa_pipeline(larger)
