"""What a loaded tokenizer and model must satisfy before a run uses them, each refused in one line naming the folder
and the fix: a tokenizer that is the model's, weights that fit the model, weights for every layer of a model the run
does not train, room for text within --max_seq_length; and a warning for a batch larger than the training data."""

import logging

from finetune.errors import InputError
from utils_qa import vocabulary_problem

logger = logging.getLogger(__name__)
MIN_TEXT_TOKENS = 4  # what a text cut to --max_seq_length keeps at the least: a few words, not just [CLS] [SEP]


def check_vocabulary(tokenizer, config, tokenizer_source, config_source):
    """A folder without tokenizer files still loads a tokenizer: one that knows only its special tokens and reads
    every word as [UNK]. A tokenizer larger than the embedding matrix gives ids the model cannot look up."""
    problem = vocabulary_problem(tokenizer, config)
    if problem is None:
        return
    if problem == "no vocabulary":
        raise InputError(f"{tokenizer_source} has no tokenizer files (tokenizer.json, vocab.txt, ...): its tokenizer "
                         f"would know only {len(tokenizer)} special tokens and read every word as "
                         f"{tokenizer.unk_token}; copy the tokenizer files of the model it was trained from into it, "
                         "or name that model with --tokenizer_name")
    raise InputError(f"the tokenizer of {tokenizer_source} has {len(tokenizer)} tokens but the model of "
                     f"{config_source} embeds only {config.vocab_size} (vocab_size in its config.json): it is not "
                     "this model's vocabulary; give the tokenizer the model was trained with (--tokenizer_name)")


def check_weights_fit(model_name_or_path, mismatched):
    """transformers refuses weights of another shape with a traceback (or, told to ignore them, starts those layers
    afresh); one line instead, whether or not the run trains."""
    if not mismatched:
        return
    name, saved, here = sorted(mismatched)[0]
    raise InputError(f"the weights of {model_name_or_path} do not fit the model this run builds ({name} is "
                     f"{list(saved)} there, {list(here)} here: a head for another number of labels?); give the "
                     "task and labels the model was trained for (its config.json names them), or another model")


def check_no_new_weights(model_name_or_path, missing, model_class):
    """For a run that does not train: the layers transformers had to start afresh would be evaluated untrained."""
    if not missing:
        return
    names = sorted(missing)
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    raise InputError(f"{model_name_or_path} holds no weights for {shown}: a {model_class} from it would evaluate new, "
                     "untrained layers (chance-level results); give a model fine-tuned for this task, or pass "
                     "--do_train to train them")


def check_text_room(max_seq_length, tokenizer, pair):
    """Classification truncates every text to --max_seq_length tokens, special tokens included: a length that leaves
    no room for words trains and evaluates on [CLS] [SEP] alone."""
    special = tokenizer.num_special_tokens_to_add(pair=bool(pair))
    if max_seq_length - special < MIN_TEXT_TOKENS:
        texts = "a sentence pair" if pair else "a text"
        raise InputError(f"--max_seq_length {max_seq_length} leaves {max(max_seq_length - special, 0)} tokens of "
                         f"{texts} after its {special} special tokens: every example would be cut to almost nothing; "
                         f"use at least {special + MIN_TEXT_TOKENS} (the default is 128)")


def warn_if_batch_exceeds_data(training_args, train_examples):
    """A warning, not an error: an optimizer step larger than the training data still trains (each step then sees
    every example, once an epoch), and a smoke test of a recipe on a few rows (--max_train_samples) is legitimate;
    but the recipe's batch size is not what this run uses."""
    per_step = (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
                * max(training_args.world_size, 1))
    if per_step > train_examples:
        logger.warning("--per_device_train_batch_size %d x --gradient_accumulation_steps %d x %d process(es) = %d "
                       "examples per optimizer step, more than the %d training examples: every step uses all of "
                       "them; lower them (or give more data) for the batch size the recipe intends",
                       training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps,
                       max(training_args.world_size, 1), per_step, train_examples)
