"""Extractive question answering (SQuAD v1.1 / v2.0): (question, context) pairs into overlapping token windows,
start/end logits back into answer text, and the question-answering pipeline built from the two.

run_squad.py trains and evaluates with these functions, and copies this file into every model folder it saves:
there `pipeline("question-answering", model=..., trust_remote_code=True)` loads QuestionAnsweringPipeline from
it, so a model answers with the same code wherever it goes. Hence this file needs numpy, torch and transformers
only.
"""

import bisect
import logging
from operator import itemgetter

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer, Pipeline

try:  # in the recipe repository: the scripts' one-line error; in a model folder, a ValueError
    from finetune.errors import InputError
except ImportError:
    class InputError(ValueError):
        """A problem with what the caller gave."""

logger = logging.getLogger(__name__)
PIPELINE_TASK = "question-answering"
# What run_squad.py writes into a model's config.json: where its pipeline is, and a v2 model's threshold.
CUSTOM_PIPELINES = {PIPELINE_TASK: {"impl": "utils_qa.QuestionAnsweringPipeline",
                                    "pt": ["AutoModelForQuestionAnswering"], "type": "text"}}


# ----------------------------------------------------------------------------------------------------------------
# Features


# The window settings as each caller names them: run_squad.py's flags, the pipeline's arguments, the shell's flags
SCRIPT_FLAGS = {"max_seq_length": "--max_seq_length", "doc_stride": "--doc_stride",
                "max_query_length": "--max_query_length"}
PIPELINE_NAMES = {"max_seq_length": "max_seq_len", "doc_stride": "doc_stride", "max_query_length": "max_question_len"}
SHELL_FLAGS = {key: f"--{name}" for key, name in PIPELINE_NAMES.items()}


def check_qa_tokenizer(tokenizer, max_seq_length, doc_stride, max_query_length, names=SCRIPT_FLAGS):
    """Offset mappings need a fast tokenizer, and the stride must leave room for new context in every window.
    `names`: how the caller's user names the three settings (SCRIPT_FLAGS, PIPELINE_NAMES, SHELL_FLAGS)."""
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(f"question answering needs a fast tokenizer (offset mappings); {type(tokenizer).__name__} "
                         "is a slow one: use a model that ships tokenizer.json")
    length, stride, question = names["max_seq_length"], names["doc_stride"], names["max_query_length"]
    context_room = max_seq_length - max_query_length - tokenizer.num_special_tokens_to_add(pair=True)
    if context_room < 2:  # no stride could leave new context: the window itself is too short
        raise InputError(f"{length} {max_seq_length} leaves {max(context_room, 0)} tokens of context after a "
                         f"question of up to {question} {max_query_length} tokens and the special tokens; "
                         f"raise {length} or lower {question}")
    if doc_stride >= context_room:
        raise InputError(f"{stride} {doc_stride} leaves no new context per window: with {length} "
                         f"{max_seq_length} and {question} {max_query_length} a window holds {context_room} "
                         f"context tokens; use {stride} below {context_room}")


# The pipeline's whole-number settings and their least values (doc_stride 0: windows that do not overlap)
OPTION_MINIMUMS = {"top_k": 1, "max_answer_len": 1, "max_seq_len": 1, "doc_stride": 0, "max_question_len": 1,
                   "batch_size": 1, "window_batch_size": 1}


def check_options(options, prefix=""):
    """The pipeline's settings, checked where they enter: a string, 0 or a negative number would otherwise end in a
    traceback deep in the windows or answer anyway (top_k 0, a batch size of -1). `prefix`: "--" for the shell."""
    for name, value in options.items():
        if value is None:
            continue
        if name == "handle_impossible_answer" and not isinstance(value, bool):
            raise InputError(f"{prefix}{name} must be True or False (got {value!r})")
        if name not in OPTION_MINIMUMS:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InputError(f"{prefix}{name} must be a whole number (got {value!r} of type {type(value).__name__})")
        if value < OPTION_MINIMUMS[name]:
            raise InputError(f"{prefix}{name} must be at least {OPTION_MINIMUMS[name]} (got {value})")


def check_utf8(text, what):
    """Command-line text with bytes that are not UTF-8 reaches Python as surrogate escapes, which the tokenizer
    cannot encode (a traceback)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        byte = text[error.start].encode("utf-8", "surrogateescape")
        raise InputError(f"{what} is not UTF-8 text (byte {byte.hex()} at character {error.start + 1}); retype it "
                         "in a UTF-8 terminal, or put the text in a UTF-8 file") from None


def vocabulary_problem(tokenizer, config):
    """Why `tokenizer` cannot be the model's, or None: "no vocabulary" (a folder without tokenizer files loads a
    tokenizer of special tokens only, which reads every word as [UNK]) or "larger than the embeddings" (ids the model
    cannot look up)."""
    if set(tokenizer.get_vocab()) <= set(tokenizer.all_special_tokens):
        return "no vocabulary"
    vocab_size = getattr(config, "vocab_size", None)
    if isinstance(vocab_size, int) and len(tokenizer) > vocab_size:
        return "larger than the embeddings"
    return None


def truncate_questions(questions, tokenizer, max_query_length):
    """Cuts questions longer than max_query_length tokens at a token boundary, so a long question cannot eat the
    window (or make the tokenizer fail on the stride)."""
    questions = list(questions)
    todo = range(len(questions))
    while todo:
        encoded = tokenizer([questions[i] for i in todo], add_special_tokens=False, return_offsets_mapping=True)
        too_long = []
        for i, offsets in zip(todo, encoded["offset_mapping"]):
            if len(offsets) > max_query_length:
                cut = offsets[max_query_length - 1][1]  # after the last token kept
                if cut >= len(questions[i]):
                    # The tokens past the limit share the last kept character (one Hangul syllable can be 3 tokens):
                    # drop that character, or the same text would come back forever.
                    cut = offsets[max_query_length - 1][0]
                questions[i] = questions[i][:min(cut, len(questions[i]) - 1)]
                too_long.append(i)
        todo = too_long  # re-check: a cut question can tokenize differently (rare, BPE)
    return questions


def tokenize_windows(examples, tokenizer, max_seq_length, doc_stride, max_query_length, pad_to_max_length,
                     first_window_only=False, mask_question_attention=False):
    """Every (question, context) pair as overlapping windows of at most max_seq_length tokens, doc_stride context
    tokens shared between neighbours. Returns (columns, sample_of_window, context_start, context_offsets): the
    tokenizer's columns (input_ids, token_type_ids, attention_mask) per window, the example each window comes from,
    the position of the window's first context token and the character offsets of its context tokens.

    Two ablations reproduce what naive notebooks do, to measure what it costs: first_window_only keeps only each
    context's first window (truncation: an answer past it cannot be found), and mask_question_attention sets the
    attention mask to 0 over the question's tokens, so that no token can attend to the question."""
    check_qa_tokenizer(tokenizer, max_seq_length, doc_stride, max_query_length)
    windows = windows_from_shared_contexts(examples, tokenizer, max_seq_length, doc_stride, max_query_length,
                                           pad_to_max_length)
    if windows is None:
        windows = windows_from_pairs(examples, tokenizer, max_seq_length, doc_stride, max_query_length,
                                     pad_to_max_length)
    if first_window_only:
        windows = first_windows(windows)
    if mask_question_attention:
        mask_question(windows, set(tokenizer.all_special_ids))
    return windows


def first_windows(windows):
    """tokenize_windows' windows cut to the first window of each example (an example's windows are consecutive)."""
    columns, sample_of_window, context_start, context_offsets = windows
    keep = [i for i, example in enumerate(sample_of_window) if i == 0 or sample_of_window[i - 1] != example]
    return ({name: [values[i] for i in keep] for name, values in columns.items()}, [sample_of_window[i] for i in keep],
            [context_start[i] for i in keep], [context_offsets[i] for i in keep])


def mask_question(windows, special_ids):
    """Attention mask 0 over each window's question tokens (neither special tokens, padding nor context), in place."""
    columns, _, context_start, context_offsets = windows
    for input_ids, mask, first, offsets in zip(columns["input_ids"], columns["attention_mask"], context_start,
                                               context_offsets):
        for position in (*range(first), *range(first + len(offsets), len(input_ids))):  # outside the context
            if mask[position] and input_ids[position] not in special_ids:
                mask[position] = 0


def windows_from_pairs(examples, tokenizer, max_seq_length, doc_stride, max_query_length, pad_to_max_length):
    """The windows as the tokenizer cuts them: every pair tokenized whole, the overflow as extra windows (any
    tokenizer, either padding side; the reference for windows_from_shared_contexts)."""
    question_first = tokenizer.padding_side == "right"  # with left padding the context comes first
    context_id = 1 if question_first else 0

    def tokenize(questions):
        return tokenizer(
            questions if question_first else examples["context"],
            examples["context"] if question_first else questions,
            truncation="only_second" if question_first else "only_first",
            max_length=max_seq_length,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding="max_length" if pad_to_max_length else False,
        )

    # Questions longer than max_query_length are rare: tokenize as they are, and only when one turns out too long
    # (or so long that the tokenizer refuses the stride) cut the questions and tokenize the batch again.
    try:
        tokenized = tokenize(examples["question"])
        too_long = any(tokenized.sequence_ids(i).count(1 - context_id) > max_query_length
                       for i in range(len(tokenized["input_ids"])))
    except Exception:  # the exact path below raises the real error if there is one
        too_long = True
    if too_long:
        tokenized = tokenize(truncate_questions(examples["question"], tokenizer, max_query_length))
    sample_of_window = tokenized.pop("overflow_to_sample_mapping")
    offset_mapping = tokenized.pop("offset_mapping")
    context_start, context_offsets = [], []
    for i, offsets in enumerate(offset_mapping):
        sequence_ids = tokenized.sequence_ids(i)  # the context's tokens are contiguous
        if context_id not in sequence_ids:  # a context the tokenizer reduces to nothing (zero-width characters)
            context_start.append(len(sequence_ids))
            context_offsets.append([])
            continue
        first = sequence_ids.index(context_id)
        last = len(sequence_ids) - 1 - sequence_ids[::-1].index(context_id)
        context_start.append(first)
        context_offsets.append(offsets[first:last + 1])
    return dict(tokenized), sample_of_window, context_start, context_offsets


def windows_from_shared_contexts(examples, tokenizer, max_seq_length, doc_stride, max_query_length,
                                 pad_to_max_length):
    """The same windows as windows_from_pairs, faster: SQuAD asks several questions about each context, so every
    distinct context is tokenized once and the windows are cut from its tokens the way the
    tokenizer's overflow cuts them. None (use windows_from_pairs) unless the question comes first and the tokenizer
    joins a pair as head + question + between + context + tail (BERT: [CLS] q [SEP] c [SEP]); None as well for
    padding without a pad token (the tokenizer's error). Questions longer than max_query_length are cut first, as
    windows_from_pairs cuts them."""
    if tokenizer.padding_side != "right" or tokenizer.truncation_side != "right" or not examples["question"]:
        return None
    if pad_to_max_length and tokenizer.pad_token_id is None:
        return None
    alone = {"add_special_tokens": False, "return_token_type_ids": False, "return_attention_mask": False,
             "verbose": False}  # verbose: a context longer than the model is expected here, no warning
    question_texts = examples["question"]
    questions = tokenizer(question_texts, **alone)["input_ids"]
    if max(map(len, questions)) > max_query_length:  # rare: cut them, as windows_from_pairs does
        question_texts = truncate_questions(question_texts, tokenizer, max_query_length)
        questions = tokenizer(question_texts, **alone)["input_ids"]
    context_index = {}
    context_of_example = [context_index.setdefault(context, len(context_index)) for context in examples["context"]]
    contexts = tokenizer(list(context_index), return_offsets_mapping=True, **alone)
    # The template comes from a pair where both texts have tokens (a context of zero-width characters has none)
    sample = next((i for i, (question, context) in enumerate(zip(questions, context_of_example))
                   if question and contexts["input_ids"][context]), None)
    if sample is None:
        return None
    template = pair_template(tokenizer, question_texts[sample], examples["context"][sample], questions[sample],
                             contexts["input_ids"][context_of_example[sample]],
                             contexts["offset_mapping"][context_of_example[sample]], max_seq_length)
    if template is None:
        return None
    head, _, between, _, tail = template["input_ids"]
    padding = {"input_ids": tokenizer.pad_token_id, "token_type_ids": tokenizer.pad_token_type_id,
               "attention_mask": 0}
    columns = {name: [] for name in template}
    sample_of_window, context_start, context_offsets = [], [], []
    for example, (question, context) in enumerate(zip(questions, context_of_example)):
        context_ids, offsets = contexts["input_ids"][context], contexts["offset_mapping"][context]
        room = max_seq_length - len(head) - len(question) - len(between) - len(tail)
        for start in window_starts(len(context_ids), room, doc_stride):
            stop = min(start + room, len(context_ids))
            sample_of_window.append(example)
            context_start.append(len(head) + len(question) + len(between))
            context_offsets.append(offsets[start:stop])
            for name, (head_values, question_fill, between_values, context_fill, tail_values) in template.items():
                if name == "input_ids":
                    window = head_values + question + between_values + context_ids[start:stop] + tail_values
                else:  # token_type_ids, attention_mask: one value for each sequence's tokens
                    window = (head_values + [question_fill] * len(question) + between_values
                              + [context_fill] * (stop - start) + tail_values)
                if pad_to_max_length:
                    window += [padding[name]] * (max_seq_length - len(window))
                columns[name].append(window)
    return columns, sample_of_window, context_start, context_offsets


def pair_template(tokenizer, question, context, question_ids, context_ids, context_offsets, max_seq_length):
    """How the tokenizer joins a (question, context) pair, per column: (head, question_fill, between, context_fill,
    tail), the special tokens' values before, between and after the two sequences and the one value each sequence's
    tokens get (None for input_ids: the tokens themselves). None unless this pair's first window is exactly that,
    with the tokens and character offsets the question and the context have alone."""
    pair = tokenizer(question, context, truncation="only_second", max_length=max_seq_length,
                     return_offsets_mapping=True)
    sequence_ids = pair.sequence_ids()
    if 0 not in sequence_ids or 1 not in sequence_ids:
        return None
    question_at, context_at = sequence_ids.index(0), sequence_ids.index(1)
    question_end, context_end = question_at + len(question_ids), context_at + sequence_ids.count(1)
    layout = ([None] * question_at + [0] * len(question_ids) + [None] * (context_at - question_end)
              + [1] * (context_end - context_at) + [None] * (len(sequence_ids) - context_end))
    if (sequence_ids != layout or pair["input_ids"][question_at:question_end] != question_ids
            or pair["input_ids"][context_at:context_end] != context_ids[:context_end - context_at]
            or pair["offset_mapping"][context_at:context_end] != context_offsets[:context_end - context_at]):
        return None
    template = {}
    for name, values in pair.items():
        if name == "offset_mapping":
            continue
        if name not in ("input_ids", "token_type_ids", "attention_mask"):
            return None  # a column this function does not know how to fill or pad
        question_values, context_values = set(values[question_at:question_end]), set(values[context_at:context_end])
        if name == "input_ids":
            fills = (None, None)
        elif len(question_values) == 1 and len(context_values) == 1:
            fills = (question_values.pop(), context_values.pop())
        else:
            return None
        template[name] = (values[:question_at], fills[0], values[question_end:context_at], fills[1],
                          values[context_end:])
    return template


def window_starts(context_tokens, room, doc_stride):
    """First context token of each window, as the tokenizer's overflow cuts them: windows of `room` tokens, each
    starting room - doc_stride tokens after the previous one, until a window reaches the end of the context."""
    starts = [0]
    while starts[-1] + room < context_tokens:
        starts.append(starts[-1] + room - doc_stride)
    return starts


def prepare_train_features(examples, tokenizer, max_seq_length=384, doc_stride=128, max_query_length=64,
                           pad_to_max_length=True, first_window_only=False, mask_question_attention=False):
    """Batched `datasets.map` function: windows with start_positions/end_positions; a window that does not hold
    the whole (first) answer, or a question without answer, is labeled with the CLS position. The last two
    options: see tokenize_windows."""
    windows = tokenize_windows(examples, tokenizer, max_seq_length, doc_stride, max_query_length, pad_to_max_length,
                               first_window_only, mask_question_attention)
    return label_answers(examples, windows, tokenizer.cls_token_id)


def label_answers(examples, windows, cls_token_id):
    """The columns of tokenize_windows' windows plus start_positions/end_positions (see prepare_train_features)."""
    columns, sample_of_window, context_start, context_offsets = windows
    columns["start_positions"], columns["end_positions"] = [], []
    for input_ids, example, first, offsets in zip(columns["input_ids"], sample_of_window, context_start,
                                                  context_offsets):
        start = end = input_ids.index(cls_token_id)
        answers = examples["answers"][example]
        if answers["answer_start"] and offsets:
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            if offsets[0][0] <= start_char and offsets[-1][1] >= end_char:
                # Offsets grow along the context: the answer starts in the last token starting at or before
                # start_char and ends in the first token ending at or after end_char (binary searches in C).
                start = first + bisect.bisect_right(offsets, start_char, key=itemgetter(0)) - 1
                end = first + bisect.bisect_left(offsets, end_char, key=itemgetter(1))
        columns["start_positions"].append(start)
        columns["end_positions"].append(end)
    return columns


def prepare_eval_features(examples, tokenizer, max_seq_length=384, doc_stride=128, max_query_length=64,
                          pad_to_max_length=True, first_window_only=False, mask_question_attention=False):
    """Batched `datasets.map` function: windows with example_id and offset_mapping (None outside the context),
    which post-processing needs and the model must not see. The last two options: see tokenize_windows."""
    columns, sample_of_window, context_start, context_offsets = tokenize_windows(
        examples, tokenizer, max_seq_length, doc_stride, max_query_length, pad_to_max_length, first_window_only,
        mask_question_attention)
    columns["example_id"] = [examples["id"][example] for example in sample_of_window]
    columns["offset_mapping"] = [
        [None] * first + offsets + [None] * (len(input_ids) - first - len(offsets))
        for input_ids, first, offsets in zip(columns["input_ids"], context_start, context_offsets)]
    return columns


# ----------------------------------------------------------------------------------------------------------------
# Post-processing


def column(rows, name):
    """A column of a datasets.Dataset, a dict of lists or a list of dicts, as a list."""
    if hasattr(rows, "with_format"):
        return arrow_rows(rows)[name].to_pylist()  # one conversion, not a lookup per element
    if isinstance(rows, dict):
        return list(rows[name])
    return [row[name] for row in rows]


def arrow_rows(dataset):
    """A datasets.Dataset formatted as Arrow (each with_format call deep-copies the dataset's description)."""
    return dataset if dataset.format["type"] == "arrow" else dataset.with_format("arrow")


class ContextOffsets:
    """The character offsets of all features' tokens kept flat, as Arrow stores them (token t of feature f is entry
    first_token[f] + t), with -1 for tokens outside the context; looked up only at the candidate positions."""

    def __init__(self, features):
        if hasattr(features, "with_format"):  # datasets.Dataset: read Arrow buffers instead of building lists
            import pyarrow as pa

            offsets = arrow_rows(features)["offset_mapping"]
            offsets = offsets.combine_chunks() if isinstance(offsets, pa.ChunkedArray) else offsets
            self.lengths = offsets.value_lengths().to_numpy()
            pairs = offsets.flatten()
            in_context = pairs.is_valid().to_numpy(zero_copy_only=False)
            chars = pairs.flatten().to_numpy().reshape(-1, 2)  # (start, end) of the non-null pairs, in order
        else:
            offset_lists = column(features, "offset_mapping")
            self.lengths = np.array([len(o) for o in offset_lists])
            in_context = np.array([o is not None for om in offset_lists for o in om], dtype=bool)
            pairs = [o for om in offset_lists for o in om if o is not None]
            chars = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        if len(chars) != in_context.sum():
            raise ValueError("offset_mapping must hold (start, end) pairs or None")
        self.first_token = np.cumsum(self.lengths) - self.lengths
        self.start_char = np.full(len(in_context), -1, dtype=np.int32)  # -1: not a context token
        self.end_char = np.full(len(in_context), -1, dtype=np.int32)
        self.start_char[in_context], self.end_char[in_context] = chars[:, 0], chars[:, 1]
        self.in_context = in_context

    def context_mask(self, width):
        """(features, width): whether each position is a context token (positions past a feature's end are not)."""
        if (self.lengths == width).all():  # features padded to one length: the flat mask is the grid
            return self.in_context.reshape(len(self.lengths), width)
        positions = np.broadcast_to(np.arange(width, dtype=np.int32), (len(self.lengths), width))
        return self.lookup(positions, self.start_char)[0]

    def lookup(self, positions, char_of_token):
        """(in_context, char) for token positions of shape (features, k), from self.start_char or self.end_char;
        positions beyond a feature's length (logits padded across batches) count as outside the context."""
        lengths = self.lengths[:, None]
        chars = char_of_token[self.first_token[:, None] + np.minimum(positions, lengths - 1)]
        return (positions < lengths) & (chars >= 0), chars


def top_k(values, k):
    """Indices of the k largest values of each row, in increasing order; of values tied for the k-th place the first
    ones (the reference's stable sort keeps those). np.partition finds each row's k-th largest value, a pass of
    comparisons the positions above it: several times faster than np.argpartition, which slows down on the many
    -inf of the positions outside the context."""
    n, width = values.shape
    kth = np.partition(values, width - k, axis=1)[:, width - k, None]
    chosen = values > kth
    ties = values == kth
    short = k - chosen.sum(axis=1)  # how many of each row's ties at the k-th value make the cut
    tied_rows = np.flatnonzero(ties.sum(axis=1) != short)  # rows where some ties stay out: keep the first ones
    if len(tied_rows):
        ties[tied_rows] &= np.cumsum(ties[tied_rows], axis=1) <= short[tied_rows, None]
    return np.nonzero(chosen | ties)[1].astype(np.int32).reshape(n, k)


def candidate_spans(start_logits, end_logits, offsets, n_best_size, max_answer_length):
    """The transformers example's candidates, all features at once: pairs of each feature's n_best_size top start
    and end positions, chosen among the context's tokens (the question, special and padding tokens cannot be
    answers; ranked with them, they would make an answer depend on how the windows were padded and batched).
    Returns scores (features, k, k) = start + end logit, -inf where the pair is invalid (a position outside the
    context, end before start, longer than max_answer_length tokens), and for the start and end positions
    (features, k): their token indices and character offsets."""
    k = min(n_best_size, start_logits.shape[1])
    in_context = offsets.context_mask(start_logits.shape[1])
    starts = top_k(np.where(in_context, start_logits, -np.inf), k)
    ends = top_k(np.where(in_context, end_logits, -np.inf), k)
    start_ok, start_char = offsets.lookup(starts, offsets.start_char)
    end_ok, end_char = offsets.lookup(ends, offsets.end_char)
    start_scores = np.where(start_ok, np.take_along_axis(start_logits, starts, axis=1), -np.inf)
    end_scores = np.where(end_ok, np.take_along_axis(end_logits, ends, axis=1), -np.inf)
    # 0 <= end - start < max_answer_length in one unsigned comparison (a negative difference wraps around)
    length_ok = (ends[:, None, :] - starts[:, :, None]).view(np.uint32) < max_answer_length
    scores = np.where(length_ok, start_scores[:, :, None] + end_scores[:, None, :], -np.inf)
    return scores, (starts, start_char), (ends, end_char)


def postprocess_qa_predictions(examples, features, predictions, version_2_with_negative=False, n_best_size=20,
                               max_answer_length=30, null_score_diff_threshold=0.0, return_null_odds=False,
                               return_nbest=False, return_spans=False, independent_argmax=False):
    """Answer text for every example from the start/end logits of its features (the transformers example's
    function of the same name and meaning, vectorized over features and candidate pairs).

    examples: rows with `id` and `context`; features: rows with `example_id` and `offset_mapping` (None outside
    the context) - datasets.Dataset, dict of lists or list of dicts; predictions: (start_logits, end_logits),
    each (features, tokens). Candidates are the pairs of each feature's n_best_size top start and end positions
    that lie in the context, end after start and span at most max_answer_length tokens; the answer is the best
    start + end logit over all features of the example ("empty" if no candidate is valid, as in the example).
    With version_2_with_negative the answer is "" when the null score (the lowest CLS start + end logit over the
    example's features) beats the best answer's score by more than null_score_diff_threshold.

    independent_argmax: the answer is chosen as naive notebooks choose it instead (an ablation): in each feature
    the start and the end are the argmax of their logits over all tokens, independently; the feature with the
    highest start + end logit gives the answer, the context's text from start to end, or "" where the start or the
    end is not a context token or the end comes before the start. No length limit, no null threshold; the n-best
    lists and null odds still describe the candidates above.

    Returns {id: answer}, followed, when asked, by {id: null score - best answer score} (return_null_odds),
    {id: the n_best_size best answers} (return_nbest: text, start and end characters, logits, probability) and
    {id: (feature, start, end)} (return_spans: the index in `features` of the window the answer came from, and the
    answer's characters in the context; (feature, None, None) where the answer is not a span of the context).
    """
    start_logits, end_logits = (np.asarray(p) for p in predictions)
    # datasets.Dataset: formatted as Arrow once, for all the columns read below
    examples, features = (arrow_rows(rows) if hasattr(rows, "with_format") else rows for rows in (examples, features))
    feature_example_ids = column(features, "example_id")  # len(features) of a dict of lists counts its keys
    if len(start_logits) != len(feature_example_ids):
        raise ValueError(f"got {len(start_logits)} predictions for {len(feature_example_ids)} features")
    example_ids, contexts = column(examples, "id"), column(examples, "context")
    index_of_id = {qid: i for i, qid in enumerate(example_ids)}
    example_of_feature = np.array([index_of_id[qid] for qid in feature_example_ids], dtype=np.int64)
    if len(np.unique(example_of_feature)) != len(example_ids):
        raise ValueError("every example needs at least one feature; pass the examples the features were made from")
    offsets = ContextOffsets(features)
    scores, (starts, start_char), (ends, end_char) = candidate_spans(
        start_logits, end_logits, offsets, n_best_size, max_answer_length)
    n_features, k = starts.shape
    rows = np.arange(n_features)

    # Best pair of each feature, then the best feature of each example.
    best_pair = scores.reshape(n_features, -1).argmax(axis=1)
    best_score = scores.reshape(n_features, -1)[rows, best_pair]
    best_start, best_end = best_pair // k, best_pair % k
    by_example = np.lexsort((-best_score, example_of_feature))
    best_feature = by_example[np.searchsorted(example_of_feature[by_example], np.arange(len(example_ids)))]

    f = best_feature
    found = np.isfinite(best_score[f])
    first_char = start_char[f, best_start[f]].tolist()
    last_char = end_char[f, best_end[f]].tolist()
    answers = {qid: context[first:last] if ok else "empty"  # "empty": the example's placeholder answer
               for qid, context, first, last, ok in zip(example_ids, contexts, first_char, last_char, found.tolist())}
    spans = {qid: (window, first, last) if ok else (window, None, None) for qid, window, first, last, ok
             in zip(example_ids, f.tolist(), first_char, last_char, found.tolist())}
    best_logits = np.where(found[:, None], np.stack([start_logits[f, starts[f, best_start[f]]],
                                                     end_logits[f, ends[f, best_end[f]]]], axis=1), 0)

    null_odds = null_feature = None
    if version_2_with_negative:
        # An example's null score is its lowest feature's: all windows must agree that there is no answer.
        null_scores = start_logits[:, 0] + end_logits[:, 0]
        by_null = np.lexsort((null_scores, example_of_feature))
        null_feature = by_null[np.searchsorted(example_of_feature[by_null], np.arange(len(example_ids)))]
        diffs = null_scores[null_feature] - best_logits[:, 0] - best_logits[:, 1]
        null_odds = {qid: float(diff) for qid, diff in zip(example_ids, diffs)}
        for qid, diff in zip(example_ids, diffs):
            if diff > null_score_diff_threshold:
                answers[qid] = ""

    if independent_argmax:
        answers, spans = argmax_answers(example_ids, contexts, example_of_feature, start_logits, end_logits, offsets)
    elif version_2_with_negative:
        spans.update({qid: (int(null_feature[e]), None, None)
                      for e, qid in enumerate(example_ids) if answers[qid] == ""})

    extras = [null_odds] if return_null_odds else []
    if return_nbest:
        extras.append(dict(zip(example_ids, nbest_lists(contexts, example_of_feature, start_logits, end_logits, scores,
                                                        starts, start_char, ends, end_char, n_best_size,
                                                        null_feature))))
    if return_spans:
        extras.append(spans)
    return (answers, *extras) if extras else answers


def argmax_answers(example_ids, contexts, example_of_feature, start_logits, end_logits, offsets):
    """({id: answer}, {id: (feature, start, end)}) by independent argmax (see postprocess_qa_predictions)."""
    rows = np.arange(len(start_logits))
    starts, ends = start_logits.argmax(axis=1), end_logits.argmax(axis=1)
    scores = start_logits[rows, starts] + end_logits[rows, ends]
    by_example = np.lexsort((-scores, example_of_feature))
    best = by_example[np.searchsorted(example_of_feature[by_example], np.arange(len(example_ids)))]
    start_ok, start_char = offsets.lookup(starts[:, None], offsets.start_char)
    end_ok, end_char = offsets.lookup(ends[:, None], offsets.end_char)
    ok = start_ok[best, 0] & end_ok[best, 0] & (ends[best] >= starts[best])
    answers, spans = {}, {}
    for qid, context, window, valid, first, last in zip(example_ids, contexts, best.tolist(), ok.tolist(),
                                                        start_char[best, 0].tolist(), end_char[best, 0].tolist()):
        answers[qid] = context[first:last] if valid else ""
        spans[qid] = (window, first, last) if valid else (window, None, None)
    return answers, spans


def nbest_lists(contexts, example_of_feature, start_logits, end_logits, scores, starts, start_char, ends, end_char,
                n_best_size, null_feature):
    """Each example's n_best_size best answers (with the null answer in v2) and their softmax probabilities."""
    n_features, k = starts.shape
    flat = scores.reshape(-1)
    order = np.flatnonzero(np.isfinite(flat))
    order = order[np.lexsort((-flat[order], example_of_feature[order // (k * k)]))]
    bounds = np.searchsorted(example_of_feature[order // (k * k)], np.arange(len(contexts) + 1))
    nbest = []
    for e, context in enumerate(contexts):
        entries = []
        for c in order[bounds[e]:min(bounds[e] + n_best_size, bounds[e + 1])]:
            f, s, t = c // (k * k), c % (k * k) // k, c % k
            entries.append({"text": context[start_char[f, s]:end_char[f, t]], "start": int(start_char[f, s]),
                            "end": int(end_char[f, t]), "start_logit": start_logits[f, starts[f, s]],
                            "end_logit": end_logits[f, ends[f, t]], "score": flat[c]})
        if null_feature is not None:
            f = null_feature[e]
            null = {"text": "", "start": 0, "end": 0, "start_logit": start_logits[f, 0], "end_logit": end_logits[f, 0],
                    "score": start_logits[f, 0] + end_logits[f, 0]}
            entries = sorted(entries + [null], key=lambda entry: -entry["score"])
            # the null answer stays listed even when n_best_size better answers push it out
            entries = entries[:n_best_size] + ([] if any(x is null for x in entries[:n_best_size]) else [null])
        if bounds[e] == bounds[e + 1]:
            entries.insert(0, {"text": "empty", "start": 0, "end": 0, "start_logit": 0.0, "end_logit": 0.0,
                               "score": 0.0})
        entry_scores = np.array([entry.pop("score") for entry in entries], dtype=np.float64)
        probabilities = np.exp(entry_scores - entry_scores.max())
        probabilities /= probabilities.sum()
        nbest.append([{"text": entry["text"], "start": entry["start"], "end": entry["end"],
                       "start_logit": float(entry["start_logit"]), "end_logit": float(entry["end_logit"]),
                       "probability": float(p)}
                      for entry, p in zip(entries, probabilities)])
    return nbest


def null_probability(null_odds):
    """Null score - best answer score as a probability that there is no answer (what squad_v2's thresholds use)."""
    # float64: in the logits' float32 every odds above ~17 would be 1.0, tied for squad_v2's threshold search
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(null_odds, dtype=np.float64), -50, 50)))


# ----------------------------------------------------------------------------------------------------------------
# The pipeline


def qa_pipeline(model_name_or_path, revision=None, device=None, dtype="auto", **options):
    """A question-answering pipeline for a model given by Hub name (at `revision`) or folder, used as transformers 4's
    was: `qa(question=..., context=...)`, a string or lists of both. dtype and the options: see
    QuestionAnsweringPipeline."""
    def fail(error):
        return InputError(f"could not load the model {model_name_or_path!r}: {str(error).splitlines()[0]}")

    try:
        config = AutoConfig.from_pretrained(model_name_or_path, revision=revision)
    except (OSError, ValueError) as error:
        raise fail(error) from None
    architectures = config.architectures or []
    if architectures and not any(name.endswith("ForQuestionAnswering") for name in architectures):
        raise InputError(f"{model_name_or_path} is a {architectures[0]}, not a question-answering model: give a "
                         "model trained for question answering, e.g. with run_squad.py")
    try:
        model, loading = AutoModelForQuestionAnswering.from_pretrained(
            model_name_or_path, revision=revision, config=config, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, revision=revision)
    except (OSError, ValueError) as error:
        raise fail(error) from None
    except Exception as error:  # safetensors' SafetensorError: a truncated or damaged weights file
        if type(error).__name__ != "SafetensorError":
            raise
        raise InputError(f"could not load the weights of {model_name_or_path!r}: its weights file is truncated or "
                         f"damaged ({str(error).splitlines()[0]}); download or copy the model again") from None
    problem = vocabulary_problem(tokenizer, config)
    if problem == "no vocabulary":
        raise InputError(f"{model_name_or_path} has no tokenizer files (tokenizer.json, vocab.txt, ...): every word "
                         "would be read as [UNK]; copy the tokenizer files of the model it was trained from into it")
    if problem:
        raise InputError(f"the tokenizer of {model_name_or_path} has {len(tokenizer)} tokens but its model embeds "
                         f"only {config.vocab_size}: it is not this model's vocabulary; copy the tokenizer files of "
                         "the model it was trained from into it")
    if any("qa_outputs" in name for name in loading["missing_keys"]):
        raise InputError(f"{model_name_or_path} has no question-answering head (its weights hold no qa_outputs "
                         "layer): give a model trained for question answering, e.g. with run_squad.py")
    return QuestionAnsweringPipeline(model=model, tokenizer=tokenizer, device=device, dtype=dtype, **options)


DTYPES = ("auto", "float32", "bfloat16")


def native_bf16(device):
    """Whether `device` computes bf16 natively: a CUDA GPU of Ampere or newer, or a CPU with AMX or AVX512-BF16 (as
    torch detects them; elsewhere torch emulates bf16, slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return any(getattr(torch.cpu, name, lambda: False)() for name in ("_is_amx_tile_supported",
                                                                         "_is_avx512_bf16_supported"))
    return False


def autocast_dtype(dtype, model, device):
    """The dtype the forward passes autocast to (None: none, the weights' own), for dtype "float32", "bfloat16" or
    "auto" (transformers' names; a torch.dtype as well). "auto": bfloat16 where the device computes it natively and
    the weights are float32, else the weights' own."""
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise InputError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if name == "auto":
        name = "bfloat16" if model.dtype == torch.float32 and native_bf16(device) else "weights"
    return torch.bfloat16 if name == "bfloat16" else None


class QuestionAnsweringPipeline(Pipeline):
    """Answers questions about contexts of any length: the windows of all questions go through the model in batches
    of `batch_size`, and each question's answer is the best span over all its windows, as run_squad.py evaluates.

    Options (at construction or per call): top_k (answers per question, default 1), max_answer_len (tokens, 30),
    max_seq_len (tokens per window, 384), doc_stride (context tokens shared by neighbouring windows, 128),
    max_question_len (64), handle_impossible_answer (answer "" when the model says there is no answer; default:
    where the model stores a no-answer threshold, see run_squad.py --version_2_with_negative), batch_size (windows
    per forward pass, 32). Each answer is {"score", "start", "end", "answer"} with context[start:end] == answer;
    "" with start = end = 0 is "no answer".

    dtype (at construction): what the model computes in. "float32"; "bfloat16": bf16 autocast over the float32
    weights (matmuls in bf16, normalizations and softmax in float32), as training in bf16 does; "auto" (the
    default): bfloat16 where the device computes it natively (a CPU with AMX or AVX512-BF16, a GPU of Ampere or
    newer), float32 elsewhere; weights loaded in another dtype (`pipeline(..., dtype=torch.float16)`) run as they
    are. The default's speed and accuracy against float32: BENCHMARKS.md."""

    def __init__(self, *args, dtype="auto", **kwargs):
        kwargs.setdefault("task", PIPELINE_TASK)
        super().__init__(*args, **kwargs)
        self.autocast_dtype = autocast_dtype(dtype, self.model, self.device)
        architectures = getattr(self.model.config, "architectures", None) or []
        if architectures and not any(name.endswith("ForQuestionAnswering") for name in architectures):
            raise InputError(f"{self.model.name_or_path} is a {architectures[0]}, not a question-answering model")
        if not getattr(self.tokenizer, "is_fast", False):
            raise InputError("question answering needs a fast tokenizer (offset mappings): use a model that ships "
                             "tokenizer.json")

    def _sanitize_parameters(self, top_k=None, max_answer_len=None, max_seq_len=None, doc_stride=None,
                             max_question_len=None, handle_impossible_answer=None, window_batch_size=None, **unused):
        check_options({"top_k": top_k, "max_answer_len": max_answer_len, "max_seq_len": max_seq_len,
                       "doc_stride": doc_stride, "max_question_len": max_question_len,
                       "handle_impossible_answer": handle_impossible_answer, "window_batch_size": window_batch_size})
        given = {name: value for name, value in (("max_seq_len", max_seq_len), ("doc_stride", doc_stride),
                                                 ("max_question_len", max_question_len)) if value is not None}
        forward = {"window_batch_size": window_batch_size} if window_batch_size is not None else {}
        answers = {name: value for name, value in (("top_k", top_k), ("max_answer_len", max_answer_len),
                                                   ("handle_impossible_answer", handle_impossible_answer))
                   if value is not None}
        return given, forward, answers

    def __call__(self, *args, question=None, context=None, batch_size=None, **kwargs):
        if args:  # qa({"question": ..., "context": ...}) or qa(question, context)
            if len(args) == 1 and isinstance(args[0], dict):
                question, context = args[0].get("question"), args[0].get("context")
            elif len(args) == 2:
                question, context = args
            else:
                raise InputError("give question= and context= (strings, or lists of the same length)")
        single = isinstance(question, str) and isinstance(context, str)
        questions, contexts = ([question], [context]) if single else (question, context)
        if isinstance(contexts, (list, tuple)) and isinstance(question, str):
            questions = [question] * len(contexts)  # one question about several contexts
        if not isinstance(questions, (list, tuple)) or not isinstance(contexts, (list, tuple)):
            raise InputError("give question= and context= (strings, or lists of the same length)")
        if not questions:
            raise InputError("no questions: give at least one question and its context")
        if len(questions) != len(contexts):
            raise InputError(f"{len(questions)} questions for {len(contexts)} contexts: give one context per question")
        for i, (q, c) in enumerate(zip(questions, contexts)):
            if not isinstance(q, str) or not q.strip():
                raise InputError(f"question {i} is empty: ask something")
            if not isinstance(c, str) or not c.strip():
                raise InputError(f"context {i} is empty: give the text to answer from")
        batch = batch_size if batch_size is not None else self._batch_size or 32
        check_options({"batch_size": batch})
        results = super().__call__({"question": list(questions), "context": list(contexts)},
                                   window_batch_size=batch, **kwargs)
        return results[0] if single else results

    def preprocess(self, inputs, max_seq_len=384, doc_stride=128, max_question_len=64):
        limit = min(self.tokenizer.model_max_length, getattr(self.model.config, "max_position_embeddings", 10**9))
        if max_seq_len > limit:
            raise InputError(f"max_seq_len {max_seq_len} is above the model's limit of {limit} tokens: lower it")
        examples = {"id": [str(i) for i in range(len(inputs["question"]))], "context": inputs["context"],
                    "question": [q.strip() for q in inputs["question"]]}  # as run_squad.py reads questions
        check_qa_tokenizer(self.tokenizer, max_seq_len, doc_stride, max_question_len, names=PIPELINE_NAMES)
        features = prepare_eval_features(examples, self.tokenizer, max_seq_len, doc_stride, max_question_len,
                                         pad_to_max_length=False)
        return {"examples": examples, "features": features}

    def _ensure_tensor_on_device(self, inputs, device):
        # Only the logits are a tensor, at the top level; _forward moves its batches. The base class would rebuild
        # the examples' and windows' lists element by element on the way in and out: for many questions, more time
        # than pre- and post-processing take together.
        return {name: value.to(device) if isinstance(value, torch.Tensor) else value for name, value in inputs.items()}

    def _forward(self, inputs, window_batch_size=32):
        features = inputs["features"]
        names = [name for name in ("input_ids", "token_type_ids", "attention_mask") if name in features]
        lengths = np.array([len(ids) for ids in features["input_ids"]])
        # -100 beyond a window's end, as the Trainer pads logits across batches (candidate_spans skips them)
        logits = np.full((2, len(lengths), lengths.max()), -100.0, dtype=np.float32)
        # Batches of windows of similar length, longest first: each batch is padded to its longest window, so the
        # model computes almost no padding (BENCHMARKS.md, question answering on a CPU). A window's logits do not
        # depend on its neighbours in the batch, beyond float rounding.
        order = np.argsort(-lengths, kind="stable")
        for begin in range(0, len(order), window_batch_size):
            rows = order[begin:begin + window_batch_size]
            batch = self.tokenizer.pad([{name: features[name][i] for name in names} for i in rows],
                                       return_tensors="pt").to(self.device)
            with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                outputs = self.model(**batch)
            width = outputs.start_logits.shape[1]
            logits[0, rows, :width] = outputs.start_logits.float().cpu().numpy()
            logits[1, rows, :width] = outputs.end_logits.float().cpu().numpy()
        return {**inputs, "logits": torch.from_numpy(logits)}

    def postprocess(self, outputs, top_k=1, max_answer_len=30, handle_impossible_answer=None):
        threshold = getattr(self.model.config, "null_score_diff_threshold", None)
        with_null = threshold is not None if handle_impossible_answer is None else handle_impossible_answer
        answers, nbest = postprocess_qa_predictions(
            outputs["examples"], outputs["features"], outputs["logits"].numpy(), version_2_with_negative=with_null,
            n_best_size=max(20, top_k), max_answer_length=max_answer_len,
            null_score_diff_threshold=threshold if threshold is not None else 0.0, return_nbest=True)
        results = []
        for qid, answer in answers.items():
            candidates = nbest[qid]
            chosen = next((c for c in candidates if c["text"] == answer), None)
            if chosen is None or answer == "empty" and chosen["start"] == chosen["end"]:  # no valid span at all
                chosen = {"text": "", "start": 0, "end": 0, "probability": 0.0}
            ranked = [chosen] + [c for c in candidates if c is not chosen and c["text"] != "empty"]
            found = [{"score": c["probability"], "start": c["start"], "end": c["end"], "answer": c["text"]}
                     for c in ranked[:top_k]]
            results.append(found[0] if top_k == 1 else found)
        return results


def quietly(function, *args, **kwargs):
    """function(*args, **kwargs) without transformers' progress bars ("Loading weights"): the shell prints answers."""
    from transformers.utils import logging as transformers_logging

    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        return function(*args, **kwargs)
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


def main(argv=None):
    """`python utils_qa.py MODEL QUESTION --context TEXT | --context_file FILE.txt`: the top answers and their
    scores, or "no answer"."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Answer a question about a text with a question-answering model.")
    parser.add_argument("model", help="Hub name (you/bert-base-uncased-squad) or folder of a trained model")
    parser.add_argument("question")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--context", help="the text to answer from")
    source.add_argument("--context_file", help="a UTF-8 .txt file holding the text (any length)")
    parser.add_argument("--top_k", type=int, default=3, help="answers to print (default 3)")
    parser.add_argument("--revision", help="branch, tag or commit of a Hub model")
    parser.add_argument("--handle_impossible_answer", choices=["true", "false"],
                        help="allow \"no answer\" (default: where the model stores a no-answer threshold)")
    parser.add_argument("--max_seq_len", type=int, default=384, help="tokens per window (default 384)")
    parser.add_argument("--doc_stride", type=int, default=128, help="context tokens shared by windows (default 128)")
    parser.add_argument("--max_question_len", type=int, default=64, help="longer questions are cut (default 64)")
    parser.add_argument("--dtype", choices=DTYPES, default="auto",
                        help="what the model computes in (default auto: bfloat16 where the CPU or GPU computes it "
                             "natively, else float32)")

    def one_line(message):  # argparse's own way prints its usage text above the message
        print(f"error: {message}; see --help", file=sys.stderr)
        sys.exit(2)

    parser.error = one_line
    args = parser.parse_args(argv)
    try:
        for what, text in (("the model name", args.model), ("the question", args.question),
                           ("--context", args.context), ("--context_file", args.context_file),
                           ("--revision", args.revision)):
            if text is not None:
                check_utf8(text, what)
        check_options({"top_k": args.top_k, "max_seq_len": args.max_seq_len, "doc_stride": args.doc_stride,
                       "max_question_len": args.max_question_len}, prefix="--")
        context = args.context
        if args.context_file:
            try:
                with open(args.context_file, encoding="utf-8") as f:
                    context = f.read()
            except (OSError, UnicodeDecodeError) as error:
                raise InputError(f"{args.context_file}: cannot read it as UTF-8 text ({error})") from None
        impossible = None if args.handle_impossible_answer is None else args.handle_impossible_answer == "true"
        qa = quietly(qa_pipeline, args.model, revision=args.revision, dtype=args.dtype)
        check_qa_tokenizer(qa.tokenizer, args.max_seq_len, args.doc_stride, args.max_question_len, names=SHELL_FLAGS)
        answers = qa(question=args.question, context=context, top_k=args.top_k, max_seq_len=args.max_seq_len,
                     doc_stride=args.doc_stride, max_question_len=args.max_question_len,
                     handle_impossible_answer=impossible)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for rank, answer in enumerate(answers if isinstance(answers, list) else [answers], 1):
        text = repr(answer["answer"]) if answer["answer"] else "no answer"
        place = f", characters {answer['start']}-{answer['end']}" if answer["answer"] else ""
        print(f"{rank}. {text} (score {answer['score']:.3f}{place})")


if __name__ == "__main__":
    main()
