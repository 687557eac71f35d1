import gzip
import json
import types
from functools import partial

import datasets
import evaluate
import numpy as np
import pytest
from conftest import REPO_DIR, SAMPLE_DIR
from qa_reference import straightforward_postprocess
from transformers import AutoTokenizer

from finetune.cli import InputError
from finetune.data import load_squad_file
from utils_qa import (
    check_qa_tokenizer, null_probability, postprocess_qa_predictions, top_k,
    prepare_eval_features, prepare_train_features, truncate_questions, windows_from_pairs, windows_from_shared_contexts,
)

WINDOWS = {"max_seq_length": 48, "doc_stride": 12, "max_query_length": 16}


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(REPO_DIR / "assets/tiny-bert")


def example(qid, context, question, answer, occurrence=0):
    """A record whose answer_start points at the occurrence-th appearance of answer in context."""
    start = -1
    for _ in range(occurrence + 1):
        start = context.index(answer, start + 1)
    return {"id": qid, "title": "", "context": context, "question": question,
            "answers": {"text": [answer], "answer_start": [start]}}


LONG = " ".join(f"Sentence {i} says the town of Kelby has {i} old mills." for i in range(60))
FIXTURES = [
    example("long-end", LONG + " It was founded by Anna Berg.", "Who founded Kelby?", "Anna Berg"),
    example("long-middle", LONG, "How many mills?", "31 old mills"),
    example("non-ascii", "Zoë Brandt and José Ortega sailed from São Tomé to Søren's island in 1602. " * 3,
            "Where did they sail from?", "São Tomé", occurrence=2),
    example("repeated", "The river Tess. The river Tess again. Then the river Tess a third time, near Marlow.",
            "Which river?", "river Tess", occurrence=1),
    example("start", "Marlow is a small town.", "What is small?", "Marlow"),
]


def windows(records, tokenizer, **kwargs):
    """Train and eval features of the same windows (same order), so labels can be read back through offsets."""
    dataset = datasets.Dataset.from_list(records)
    args = {"tokenizer": tokenizer, **WINDOWS, **kwargs}
    train = dataset.map(partial(prepare_train_features, **args), batched=True, remove_columns=dataset.column_names)
    evaluation = dataset.map(partial(prepare_eval_features, **args), batched=True, remove_columns=dataset.column_names)
    return dataset, train, evaluation


# ---- Features


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_every_window_holding_the_answer_maps_back_to_the_gold_text(tokenizer, padding_side):
    tokenizer = AutoTokenizer.from_pretrained(REPO_DIR / "assets/tiny-bert", padding_side=padding_side)
    _, train, evaluation = windows(FIXTURES, tokenizer)
    by_id = {r["id"]: r for r in FIXTURES}
    labeled = dict.fromkeys(by_id, 0)
    for i, (offsets, example_id) in enumerate(zip(evaluation["offset_mapping"], evaluation["example_id"])):
        record = by_id[example_id]
        start, end = train[i]["start_positions"], train[i]["end_positions"]
        gold_start = record["answers"]["answer_start"][0]
        gold_end = gold_start + len(record["answers"]["text"][0])
        context_chars = [o for o in offsets if o is not None]
        holds_answer = context_chars[0][0] <= gold_start and context_chars[-1][1] >= gold_end
        cls_index = train[i]["input_ids"].index(tokenizer.cls_token_id)
        if holds_answer:
            assert record["context"][offsets[start][0]:offsets[end][1]] == record["answers"]["text"][0]
            labeled[example_id] += 1
        else:
            assert start == end == cls_index
    assert all(count >= 1 for count in labeled.values()), labeled
    assert len(evaluation) > 2 * len(FIXTURES)  # the long contexts were really split into windows


@pytest.mark.parametrize("repeats", [300, 5])  # too long for the stride (the tokenizer refuses) / just too long
def test_long_question_is_truncated_not_fatal(tokenizer, repeats):
    short = example("s", "Marlow lies on the river Tess.", "Which river?", "Tess")
    record = example("q", "Marlow lies on the river Tess.", " ".join(["why"] * repeats) + " which river?", "Tess")
    _, train, evaluation = windows([short, record], tokenizer)
    for ids, offsets in zip(train["input_ids"], evaluation["offset_mapping"]):
        question_tokens = ids.index(tokenizer.sep_token_id) - 1
        assert question_tokens <= WINDOWS["max_query_length"]
    assert any(s != 0 for s in train["start_positions"])


def test_stride_too_large_and_slow_tokenizer_are_clear_errors(tokenizer):
    with pytest.raises(InputError, match="--doc_stride 40 leaves no new context.*below 29"):
        check_qa_tokenizer(tokenizer, max_seq_length=48, doc_stride=40, max_query_length=16)
    with pytest.raises(InputError, match="--max_seq_length 8 leaves 0 tokens of context after a question of up to "
                                         "--max_query_length 16 tokens"):  # not "use --doc_stride below -11"
        check_qa_tokenizer(tokenizer, max_seq_length=8, doc_stride=4, max_query_length=16)
    with pytest.raises(InputError, match="fast tokenizer"):
        check_qa_tokenizer(types.SimpleNamespace(is_fast=False), 384, 128, 64)
    with pytest.raises(InputError, match="doc_stride"):
        windows(FIXTURES[:1], tokenizer, doc_stride=30)


def test_cutting_a_question_whose_characters_are_several_tokens_ends(tokenizer):
    """A Hangul syllable is 3 tokens with the same character offsets in MiniLM's vocabulary: cutting after the last
    kept token kept the whole syllable, the same text came back, and tokenization looped forever."""
    calls = []

    def three_tokens_per_hangul(texts, **_):  # offsets as the real tokenizer gives them
        calls.append(texts)
        assert len(calls) < 10, "no progress"
        return {"offset_mapping": [[(i, i + 1) for i, ch in enumerate(text) for _ in range(3 if ch == "한" else 1)]
                                   for text in texts]}

    [cut] = truncate_questions(["why " * 15 + "한한"], three_tokens_per_hangul, max_query_length=62)
    assert cut == "why " * 15 and len(calls) == 3
    assert truncate_questions(["why " * 15 + "한"], three_tokens_per_hangul, max_query_length=63) == ["why " * 15 + "한"]


def test_a_context_without_tokens_gets_a_window_wherever_it_is_in_the_batch(tokenizer):
    """Zero-width characters pass validation (str.strip keeps them) but the tokenizer removes them: such a context
    first in a batch made the windows fall back on the tokenizer's own and fail there."""
    empty = {"id": "z", "title": "", "context": "\u200b\u200b", "question": "what?",
             "answers": {"text": [], "answer_start": []}}
    normal = example("n", "Marlow lies on the river Tess.", "Which river?", "Tess")
    assert tokenizer("\u200b\u200b", add_special_tokens=False)["input_ids"] == []
    for records in ([empty, normal], [normal, empty]):
        batch = {name: [record[name] for record in records] for name in empty}
        features = prepare_eval_features(batch, tokenizer, **WINDOWS, pad_to_max_length=False)
        decoded = {qid: tokenizer.decode(ids) for qid, ids in zip(features["example_id"], features["input_ids"])}
        assert decoded == {"z": "[CLS] what? [SEP] [SEP]",
                           "n": "[CLS] which river? [SEP] marlow lies on the river tess. [SEP]"}
        assert features["offset_mapping"][features["example_id"].index("z")] == [None] * 5
        train = prepare_train_features(batch, tokenizer, **WINDOWS, pad_to_max_length=False)
        assert train["start_positions"][features["example_id"].index("z")] == 0  # CLS: no answer here


@pytest.mark.parametrize("pad_to_max_length", [False, True])
def test_windows_cut_from_shared_contexts_equal_the_tokenizers_own(tokenizer, pad_to_max_length):
    # Contexts from 1 to 80 tokens cross every window boundary (a window holds 48 - 3 - question tokens), questions
    # of different lengths share each context, and the fixtures add unicode and long texts.
    contexts = [" ".join(["the river"] * (n // 2) + ["town"] * (n % 2)) for n in range(1, 81)]
    questions = ["Which river?", "Which town is on the river?", "Why?"]
    records = FIXTURES + [example(f"{c}-{q}", context, question, context.split()[-1])
                          for c, context in enumerate(contexts) for q, question in enumerate(questions)]
    batch = {name: [record[name] for record in records] for name in records[0]}
    args = (tokenizer, WINDOWS["max_seq_length"], WINDOWS["doc_stride"], 24, pad_to_max_length)  # no question cut
    shared = windows_from_shared_contexts(batch, *args)
    assert shared is not None
    assert shared == windows_from_pairs(batch, *args)
    assert len(shared[1]) > len(records) + 100  # many contexts needed several windows


def test_windows_fall_back_to_the_tokenizer_when_they_cannot_be_cut_from_the_context(tokenizer):
    args = (WINDOWS["max_seq_length"], WINDOWS["doc_stride"], WINDOWS["max_query_length"], False)
    batch = {name: [record[name] for record in FIXTURES] for name in FIXTURES[0]}
    left = AutoTokenizer.from_pretrained(REPO_DIR / "assets/tiny-bert", padding_side="left")  # context first
    assert windows_from_shared_contexts(batch, left, *args) is None
    no_pad_token = AutoTokenizer.from_pretrained(REPO_DIR / "assets/tiny-bert")
    no_pad_token.pad_token = None
    assert windows_from_shared_contexts(batch, no_pad_token, *args[:-1], True) is None


@pytest.mark.parametrize("pad_to_max_length", [False, True])
def test_too_long_questions_are_cut_the_same_way_on_both_paths(tokenizer, pad_to_max_length):
    questions = [" ".join(["why"] * n) + " which river?" for n in (1, 14, 15, 16, 40, 300)]  # around the 16 cut
    records = [example(f"q{n}", FIXTURES[0]["context"], question, "Anna Berg") for n, question in enumerate(questions)]
    batch = {name: [record[name] for record in records + FIXTURES] for name in records[0]}
    args = (tokenizer, *WINDOWS.values(), pad_to_max_length)
    shared = windows_from_shared_contexts(batch, *args)
    assert shared is not None and shared == windows_from_pairs(batch, *args)
    columns, _, context_start, _ = shared
    assert max(context_start) == 1 + WINDOWS["max_query_length"] + 1  # [CLS] + the cut question + [SEP]


def peaked_logits(train, evaluation, no_answer_ids=()):
    """Logits that peak at the labeled tokens (CLS for windows without the answer)."""
    n, width = len(train), len(train[0]["input_ids"])
    start, end = np.full((n, width), -10.0, np.float32), np.full((n, width), -10.0, np.float32)
    rows = np.arange(n)
    start[rows, train["start_positions"]] = 10.0
    end[rows, train["end_positions"]] = 10.0
    for i, example_id in enumerate(evaluation["example_id"]):
        if example_id not in no_answer_ids:
            start[i, 0] = end[i, 0] = -20.0  # a window of an answerable question never votes "no answer"
    return start, end


def test_gold_peaking_logits_score_100_through_evaluate(tokenizer):
    records = load_squad_file(SAMPLE_DIR / "squad_dev.json")
    examples, train, evaluation = windows(records, tokenizer)
    answers, nbest = postprocess_qa_predictions(examples, evaluation, peaked_logits(train, evaluation),
                                                return_nbest=True)
    metric = evaluate.load(str(REPO_DIR / "metrics/squad"))
    scores = metric.compute(predictions=[{"id": k, "prediction_text": v} for k, v in answers.items()],
                            references=[{"id": r["id"], "answers": r["answers"]} for r in records])
    assert scores == {"exact_match": 100.0, "f1": 100.0}
    assert set(nbest) == set(answers)
    assert all(abs(sum(e["probability"] for e in entries) - 1) < 1e-6 for entries in nbest.values())
    assert all(entries[0]["text"] == answers[qid] for qid, entries in nbest.items())
    contexts = dict(zip(examples["id"], examples["context"]))  # each n-best answer says where it is
    assert all(contexts[qid][e["start"]:e["end"]] == e["text"] for qid, entries in nbest.items() for e in entries)


def test_v2_gold_peaking_logits_score_100_with_real_null_odds(tokenizer):
    records = load_squad_file(SAMPLE_DIR / "squad_v2_dev.json", version_2_with_negative=True)
    no_answer = {r["id"] for r in records if not r["answers"]["text"]}
    assert no_answer
    examples, train, evaluation = windows(records, tokenizer)
    answers, null_odds = postprocess_qa_predictions(
        examples, evaluation, peaked_logits(train, evaluation, no_answer), version_2_with_negative=True,
        return_null_odds=True)
    assert {qid for qid, text in answers.items() if text == ""} == no_answer
    assert all(null_odds[q] > 0 for q in no_answer) and all(null_odds[q] < 0 for q in answers if q not in no_answer)
    metric = evaluate.load(str(REPO_DIR / "metrics/squad_v2"))
    scores = metric.compute(
        predictions=[{"id": k, "prediction_text": v, "no_answer_probability": float(null_probability(null_odds[k]))}
                     for k, v in answers.items()],
        references=[{"id": r["id"], "answers": r["answers"]} for r in records])
    assert scores["exact"] == scores["f1"] == scores["best_f1"] == 100.0
    assert scores["NoAns_total"] == len(no_answer)


def test_no_answer_probabilities_of_large_null_odds_stay_ordered():
    """squad_v2's threshold search sorts questions by this probability: float32 made every odds above ~17 equal 1."""
    odds = np.array([15.0, 20.0, 30.0], dtype=np.float32)
    probabilities = [float(null_probability(o)) for o in odds]
    assert probabilities == sorted(set(probabilities)) and probabilities[-1] < 1.0
    assert float(null_probability(np.float32(-2.0))) == pytest.approx(1 / (1 + np.exp(2.0)))


def test_null_score_diff_threshold_decides_between_null_and_span(tokenizer):
    record = example("q", "Marlow lies on the river Tess.", "Which river?", "Tess")
    examples, train, evaluation = windows([record], tokenizer)
    start, end = peaked_logits(train, evaluation)
    start[:, 0] = end[:, 0] = 9.0  # null score 18 versus the span's 20: the span wins by 2
    run = partial(postprocess_qa_predictions, examples, evaluation, (start, end), version_2_with_negative=True,
                  return_null_odds=True)
    answers, odds = run(null_score_diff_threshold=0.0)
    assert answers == {"q": "Tess"} and odds["q"] == pytest.approx(-2.0)
    assert run(null_score_diff_threshold=-2.5)[0] == {"q": ""}
    assert run(null_score_diff_threshold=-1.5)[0] == {"q": "Tess"}


# ---- The notebook's choices (ablations)


def test_first_window_only_keeps_each_questions_first_window(tokenizer):
    examples, _, every = windows(FIXTURES, tokenizer)
    _, train, first = windows(FIXTURES, tokenizer, first_window_only=True)
    assert first["example_id"] == examples["id"]  # one window per question, in order
    firsts = [every["example_id"].index(qid) for qid in examples["id"]]
    assert first["input_ids"] == [every[i]["input_ids"] for i in firsts]
    # the answer past the first window is labeled "not here" (CLS), as truncation makes it
    assert train[0]["start_positions"] == train[0]["end_positions"] == 0
    assert train[len(FIXTURES) - 1]["start_positions"] > 0


@pytest.mark.parametrize("pad_to_max_length", [True, False])
def test_mask_question_attention_hides_exactly_the_questions_tokens(tokenizer, pad_to_max_length):
    _, _, plain = windows(FIXTURES, tokenizer, pad_to_max_length=pad_to_max_length)
    _, masked_train, masked = windows(FIXTURES, tokenizer, pad_to_max_length=pad_to_max_length,
                                      mask_question_attention=True)
    assert masked["input_ids"] == plain["input_ids"]
    for window, before, after in zip(plain, plain["attention_mask"], masked["attention_mask"]):
        question = [i for i, (ids, types) in enumerate(zip(window["input_ids"], window["token_type_ids"]))
                    if types == 0 and ids not in tokenizer.all_special_ids]
        assert question and all(after[i] == 0 for i in question)
        assert all(after[i] == before[i] for i in range(len(before)) if i not in question)
    assert masked_train["attention_mask"] == masked["attention_mask"]


def test_independent_argmax_answers_as_a_notebook_does(tokenizer):
    record = example("q", "Marlow lies on the river Tess.", "Which river?", "Tess")
    examples, train, evaluation = windows([record], tokenizer)
    start, end = peaked_logits(train, evaluation)
    gold_start, gold_end = train[0]["start_positions"], train[0]["end_positions"]
    run = partial(postprocess_qa_predictions, examples, evaluation, independent_argmax=True, return_spans=True)
    answers, spans = run((start, end))
    assert answers == {"q": "Tess"} and spans["q"] == (0, 25, 29)
    # the end's argmax before the start's: the notebook's empty answer (the n-best choice finds a valid pair)
    start[0, gold_start] = end[0, gold_end] = 0.0
    start[0, gold_start - 1], end[0, gold_start - 2] = 12.0, 11.0
    end[0, gold_end] = 10.5
    assert run((start, end))[0] == {"q": ""}
    assert postprocess_qa_predictions(examples, evaluation, (start, end)) == {"q": "river Tess"}
    # an argmax on a question token answers nothing
    start[0, 2] = 50.0
    assert run((start, end)) == ({"q": ""}, {"q": (0, None, None)})


@pytest.mark.parametrize("pad_to_max_length", [True, False])
def test_vectorized_answers_equal_the_straightforward_loop(tokenizer, pad_to_max_length):
    records = load_squad_file(SAMPLE_DIR / "squad_dev.json") + FIXTURES
    examples, _, evaluation = windows(records, tokenizer, pad_to_max_length=pad_to_max_length)
    width = max(len(o) for o in evaluation["offset_mapping"])
    rng = np.random.default_rng(0)
    logits = tuple(rng.standard_normal((len(evaluation), width), dtype=np.float32) for _ in range(2))
    for row, offsets in enumerate(evaluation["offset_mapping"]):  # what the Trainer pads shorter batches with
        logits[0][row, len(offsets):] = logits[1][row, len(offsets):] = -100
    for n_best, max_length in [(20, 30), (5, 3), (1, 30)]:
        reference = straightforward_postprocess(examples.to_dict(), evaluation.to_dict(), logits, n_best, max_length)
        assert postprocess_qa_predictions(examples, evaluation, logits, n_best_size=n_best,
                                          max_answer_length=max_length) == reference
        # plain Python inputs (a notebook's lists) take the other path to the same answers
        assert postprocess_qa_predictions(examples.to_list(), evaluation.to_list(), logits, n_best_size=n_best,
                                          max_answer_length=max_length) == reference
        assert postprocess_qa_predictions(examples.to_dict(), evaluation.to_dict(), logits, n_best_size=n_best,
                                          max_answer_length=max_length) == reference  # len() of a dict: its keys


def test_top_k_keeps_the_first_of_the_values_tied_for_the_last_place():
    """The candidates are each window's top positions; where values tie for the last place the first positions
    win, as in the reference's stable sort (bf16 logits tie often, -inf fills positions outside the context)."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4, size=(200, 30)).astype(np.float32)  # many ties
    values[rng.random(values.shape) < 0.3] = -np.inf
    values[:3] = [[7.0] * 30, [-np.inf] * 30, np.arange(30)]
    for k in (1, 5, 20, 30):
        expected = np.sort(np.argsort(-values, axis=1, kind="stable")[:, :k], axis=1)
        assert (top_k(values, k) == expected).all(), k


# ---- Loading and bad input


def squad_document(qas, context="Marlow lies on the river Tess."):
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": context, "qas": qas}]}]}


def qa(qid="1", question="Which river?", text="Tess", start=25):
    return {"id": qid, "question": question, "answers": [{"text": text, "answer_start": start}]}


def test_nested_gzip_and_flat_rows_load_the_same_records(tmp_path):
    document = squad_document([qa(question="  Which river?  ")])
    with gzip.open(tmp_path / "dev.json.gz", "wt", encoding="utf-8") as f:
        json.dump(document, f)
    row = {"id": "1", "title": "T", "context": "Marlow lies on the river Tess.", "question": "Which river?",
           "answers": {"text": ["Tess"], "answer_start": [25]}}
    (tmp_path / "dev.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "dev.csv").write_text('id,title,context,question,answers\n1,T,Marlow lies on the river Tess.,'
                                      'Which river?,"{""text"": [""Tess""], ""answer_start"": [25]}"\n')
    expected = [row]
    assert load_squad_file(tmp_path / "dev.json.gz") == expected
    assert load_squad_file(tmp_path / "dev.jsonl") == expected
    assert load_squad_file(tmp_path / "dev.csv") == expected
    test_rows = [{k: v for k, v in row.items() if k != "answers"}]
    (tmp_path / "test.json").write_text(json.dumps(test_rows))
    assert load_squad_file(tmp_path / "test.json", with_answers=False) == test_rows


def test_a_flat_csv_whose_context_spans_lines(tmp_path):
    """csv.writer quotes a field holding line breaks; the answer after them must still be where answer_start says."""
    import csv

    context = "Marlow lies on the river Tess.\r\nIts main trade is timber."
    row = {"id": "1", "title": "T", "context": context, "question": "Which trade?",
           "answers": {"text": ["timber"], "answer_start": [context.index("timber")]}}
    with open(tmp_path / "dev.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(list(row))
        writer.writerow([json.dumps(v) if isinstance(v, dict) else v for v in row.values()])
    assert load_squad_file(tmp_path / "dev.csv") == [row]


BAD_FILES = [
    ("start.json", squad_document([qa(start=3)]), "answer_start 3 points at 'low ', not at the answer 'Tess'"),
    ("negative.json", squad_document([qa(start=-5)]), "answer_start -5 is negative"),  # context[-5:-1] == "Tess"
    ("context.json", squad_document([qa(start=0, text="x")], context="   "), "empty context"),
    ("question.json", squad_document([qa(question=" ")]), "empty question"),
    ("missing.json", squad_document([{"id": "1", "answers": []}]), "missing field 'question'"),
    ("dup.json", squad_document([qa(), qa()]), "(id 1): duplicate id"),
    ("noanswer.json", squad_document([{**qa(), "answers": []}]), "--version_2_with_negative"),
    ("nesting.json", {"data": [{"title": "T", "paragraphs": {"context": "x"}}]}, "expected 'paragraphs' to be a list"),
    ("qas.json", {"data": [{"title": "T", "paragraphs": [{"context": "x"}]}]}, "paragraph 0: expected a dict"),
    ("answers.json", squad_document([{**qa(), "answers": "Tess"}]), "'answers' is not valid JSON"),
]


@pytest.mark.parametrize("name, document, message", BAD_FILES)
def test_bad_squad_files_are_clear_errors(tmp_path, name, document, message):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    with pytest.raises(InputError) as error:
        load_squad_file(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_unanswerable_questions_load_in_v2(tmp_path):
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(squad_document([{**qa(), "answers": [], "is_impossible": True}])))
    [record] = load_squad_file(path, version_2_with_negative=True)
    assert record["answers"] == {"text": [], "answer_start": []}
