"""Loading the tokenizer, config and model from a Hub id or a local folder (what was loaded is checked in
finetune.model_checks), and the checks that need them: the sequence length the model takes, the packages the
optimizer needs, and whether a checkpoint fits the model."""

import json
import logging
from pathlib import Path

import safetensors
import transformers
from transformers import AutoConfig, AutoTokenizer, Trainer

from finetune.errors import InputError
from finetune.model_checks import check_no_new_weights, check_vocabulary, check_weights_fit

logger = logging.getLogger(__name__)


def load_tokenizer_and_config(model_args, **config_overrides):
    """Config and (fast) tokenizer from a Hub id or local folder; --config_name alone means training from scratch."""
    config_source = model_args.config_name or model_args.model_name_or_path
    tokenizer_source = model_args.tokenizer_name or model_args.model_name_or_path
    if not config_source or not tokenizer_source:
        raise InputError("give --model_name_or_path, or --config_name and --tokenizer_name to train from scratch")
    hub = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision,
           "trust_remote_code": model_args.trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(config_source, **hub, **config_overrides)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, **hub)
    except OSError as error:
        raise InputError(f"could not load the model {config_source!r}: {str(error).splitlines()[0]}") from None
    except ValueError as error:
        if "trust_remote_code" not in str(error):
            raise
        raise InputError(f"{config_source} ships its own Python code, which is not run by default; read it, and pass "
                         "--trust_remote_code only if you trust that repository") from None
    for name, value in config_overrides.items():  # transformers 5 drops the ones that are not config fields
        setattr(config, name, value)
    check_vocabulary(tokenizer, config, tokenizer_source, config_source)
    return config, tokenizer


def load_model(model_args, auto_class, config, trains):
    """The model; one that will not be trained (`trains` false) must have weights for every layer: a new layer's
    random weights would be evaluated as if they were a result (chance-level accuracy, answers anywhere)."""
    if model_args.model_name_or_path is None:
        if not trains:
            raise InputError(f"no --model_name_or_path: the model of --config_name {model_args.config_name} would "
                             "have random weights, and this run does not train it; give the trained model with "
                             "--model_name_or_path, or pass --do_train")
        logger.info("No --model_name_or_path: training a new model from the config %s", model_args.config_name)
        model = auto_class.from_config(config, trust_remote_code=model_args.trust_remote_code)
    else:
        try:
            model, loading = auto_class.from_pretrained(
                model_args.model_name_or_path, config=config, cache_dir=model_args.cache_dir,
                revision=model_args.model_revision, trust_remote_code=model_args.trust_remote_code,
                output_loading_info=True, ignore_mismatched_sizes=True,  # (a mismatch: one line, below)
            )
        except OSError as error:  # a folder or Hub repository with a config but no weights
            raise InputError(f"could not load the weights of {model_args.model_name_or_path!r}: "
                             f"{str(error).splitlines()[0].rstrip('.')}; to train from scratch pass "
                             "--model_name_or_path \"\" and --config_name") from None
        except safetensors.SafetensorError as error:  # a weights file cut short (a copy or a download interrupted)
            raise InputError(f"could not load the weights of {model_args.model_name_or_path!r}: a weights file is "
                             f"truncated or damaged ({str(error).splitlines()[0]}); download or copy the model "
                             "again") from None
        check_weights_fit(model_args.model_name_or_path, loading["mismatched_keys"])
        if not trains:
            check_no_new_weights(model_args.model_name_or_path, loading["missing_keys"], type(model).__name__)
    # The classification and QA heads return the mean loss of their batch and ignore `num_items_in_batch`. Their
    # forward() takes **kwargs, so the Trainer would otherwise assume they sum over items and multiply the loss by the
    # number of processes: with several processes the logged train/eval loss and the gradients came out N times too big.
    model.accepts_loss_kwargs = False
    return model


def check_training_setup(training_args, model, resume_from):
    """What the Trainer would find out only after the data is tokenized: the packages --optim and --use_liger_kernel
    need, and whether the checkpoint to resume from fits this run's model (one of another config has other weight
    shapes: compared in its safetensors headers, without loading the weights)."""
    if training_args.use_liger_kernel and not transformers.utils.is_liger_kernel_available():
        raise InputError("--use_liger_kernel needs the liger-kernel package: pip install liger-kernel, or drop the "
                         "flag")
    try:
        Trainer.get_optimizer_cls_and_kwargs(training_args, model)
    except ImportError as error:
        raise InputError(f"--optim {training_args.optim.value} needs a package that is not installed: "
                         f"{str(error).strip().splitlines()[0]}") from None
    if resume_from is None:
        return
    index = Path(resume_from, "model.safetensors.index.json")
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else [
        "model.safetensors"]
    if not all(Path(resume_from, file).is_file() for file in files):
        return  # an FSDP-sharded or .bin checkpoint: left to the Trainer (a mismatch there is a traceback)
    state = model.state_dict()
    shapes = {name: list(tensor.shape) for name, tensor in state.items()}
    saved_names = set()
    advice = "resume with the model, config and tokenizer it was trained with, or start afresh in another --output_dir"
    for file in files:
        with safetensors.safe_open(Path(resume_from, file), "pt") as weights:
            for name in weights.keys():
                saved_names.add(name)
                saved = weights.get_slice(name).get_shape()
                if name in shapes and saved != shapes[name]:
                    raise InputError(f"cannot resume from {resume_from}: its weights do not fit this run's model "
                                     f"(size mismatch for {name}: {saved} in the checkpoint, {shapes[name]} here); "
                                     f"{advice}")
    # Tied weights are saved once, under one of their names: a name missing from the checkpoint is fine when its
    # tensor is another name's that the checkpoint holds.
    saved_storage = {state[name].data_ptr() for name in saved_names if name in state}
    missing = [name for name in state if name not in saved_names and state[name].data_ptr() not in saved_storage]
    unexpected = sorted(saved_names - set(state))
    if missing or unexpected:
        found = "; ".join(f"{label} {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
                          for label, names in (("not in the checkpoint:", missing),
                                               ("in the checkpoint but not in this model:", unexpected)) if names)
        raise InputError(f"cannot resume from {resume_from}: it holds the weights of another model ({found}); "
                         f"{advice}")


def check_max_seq_length(max_seq_length, tokenizer, config):
    if max_seq_length < 1:  # the tokenizer would take 0 or less as "no truncation"
        raise InputError(f"--max_seq_length must be at least 1 (got {max_seq_length})")
    limit = min(tokenizer.model_max_length, getattr(config, "max_position_embeddings", tokenizer.model_max_length))
    if max_seq_length > limit:
        raise InputError(f"--max_seq_length {max_seq_length} is above the model's limit of {limit} tokens; lower it")
