"""Training glue: the Trainer subclass both scripts use (evaluation order kept, compilation and CUDA graphs, pushes
during training filtered, a diverged run stopped before it saves or evaluates), the batch collator, training and
saving, and the end of a run (card, push, timings)."""

import dataclasses
import logging
import sys
from pathlib import Path

import pyarrow
import pyarrow.compute
import torch
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from finetune.card import early_stop_note, read_json
from finetune.errors import InputError, known_tokens, scrub
from finetune.hub import CARD_FALLBACK, IGNORE_PATTERNS, describe_push_error, push_output_dir, save_model_card
from finetune.outputs import save_metrics
from finetune.runs import CHECKPOINT_NAME, check_lock_held, keep_checkpoints, listed_checkpoints

logger = logging.getLogger(__name__)


def batch_collator(tokenizer, training_args, pad_to_max_length):
    """None when the features are padded to max_seq_length already; else each batch padded to its longest row (to a
    multiple of 8 under mixed precision: tensor-core friendly shapes)."""
    if pad_to_max_length:
        return None
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if training_args.bf16 or training_args.fp16 else None)


class TrainingDiverged(InputError):
    """The loss or the weights became NaN/inf during training. An InputError (exit code 2, one line): the remedy is a
    change of arguments (learning rate, clipping, warm-up, precision), as for other bad input."""


class DivergenceCheck(TrainerCallback):
    """Checks that the model is still finite where the Trainer syncs anyway: at each step that logs (it reads the
    loss then) or evaluates, and at each epoch's end (before its evaluation and the final training metrics). Saves
    are checked by OrderedEvalTrainer.save_model."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer.losses_finite = None
        self.trainer.finite_at_step = state.global_step  # from a checkpoint: saved after the same check

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_log or control.should_evaluate:
            self.trainer.check_finite()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer.check_finite()


class OrderedEvalTrainer(Trainer):
    """A Trainer whose evaluation and prediction batches keep the dataset's order. The Trainer length-groups them
    too under --train_sampling_strategy group_by_length, and then the i-th prediction no longer belongs to the i-th
    row: failure reports and QA post-processing rely on that order."""

    def __init__(self, *args, dynamic_lengths=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.dynamic_lengths = dynamic_lengths  # False when every batch is padded to the same length
        self.replays_cuda_graphs = self.args.replays_cuda_graphs
        # The "cudagraphs" backend records a graph for the shapes it was compiled with and fails when a size changes
        # (at the short last batch of an epoch: "size of tensor a (32) must match ... b (12)"). Compile each shape
        # on its own instead: with padding to max_length, one graph for full batches and one for the last (and, in an
        # evaluation-only run, which compiles the evaluation model, one per evaluation batch size).
        self.static_shapes = self.args.torch_compile and self.args.torch_compile_backend == "cudagraphs"
        if self.static_shapes:
            torch._dynamo.config.automatic_dynamic_shapes = False  # (torch has no public switch for it)
            if dynamic_lengths:
                logger.warning("CUDA graphs with batches padded to their longest row record a graph for every length "
                               "(and fall back to eager steps after 8): pass --pad_to_max_length true")
        # Whether every step's loss since the last check was finite, kept on the loss's device: read only with the
        # weights' check, so that a step adds no GPU sync. The Trainer's logging_nan_inf_filter leaves non-finite
        # losses out of the logged loss, so the logs alone would not show them.
        self.losses_finite = None
        self.finite_at_step = 0  # the last step at which the loss and the weights were checked and finite
        self.saved_checkpoint = None  # the last checkpoint this run saved (each after the check)
        self.add_callback(DivergenceCheck(self))
        if self.args.early_stopping_patience and self.args.do_train:
            self.add_callback(EarlyStoppingCallback(self.args.early_stopping_patience,
                                                    self.args.early_stopping_threshold or 0.0))

    def training_step(self, *args, **kwargs):
        if self.replays_cuda_graphs:
            # CUDA graphs replay into the same output memory each step: say that a new step begins, so the last
            # step's outputs (consumed by its backward) may be overwritten. A no-op without a GPU.
            torch.compiler.cudagraph_mark_step_begin()
        loss = super().training_step(*args, **kwargs)
        finite = loss.detach().isfinite().all()
        self.losses_finite = finite if self.losses_finite is None else self.losses_finite & finite
        return loss

    def check_finite(self):
        """Raises TrainingDiverged unless every step's loss since the last check and every weight are finite: one
        reduction and one read (a GPU sync), so only where the Trainer is about to log, evaluate or save."""
        flags = [p.detach().isfinite().all() for p in self.model.parameters()]
        if self.losses_finite is not None:
            flags.append(self.losses_finite.to(flags[0].device) if flags else self.losses_finite)
        if not flags:
            return
        finite = torch.stack(flags).all()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every process must stop together: each saw its own batches' losses (and with FSDP its own shard)
            finite = finite.int()
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if not finite.item():
            raise TrainingDiverged(self.divergence_message())
        self.losses_finite = None
        self.finite_at_step = self.state.global_step

    def divergence_message(self):
        args, step = self.args, self.state.global_step
        when = (f"at step {step}" if step - self.finite_at_step <= 1
                else f"between steps {self.finite_at_step} and {step}" if self.finite_at_step
                else f"within the first {step} steps")
        rate = f"--learning_rate {args.learning_rate:g}"
        if self.lr_scheduler is not None:
            rate += f", scheduled {self.lr_scheduler.get_last_lr()[0]:.3g} at step {step}"
        kept = (f"{self.saved_checkpoint} is the last good checkpoint" if self.saved_checkpoint
                else "this run saved no model")
        usual = " (fine-tuning rates are usually 1e-5 to 1e-3)" if args.learning_rate >= 1e-2 else ""
        remedies = [f"a lower --learning_rate{usual}"]
        if args.adam_epsilon <= 0 and "adam" in str(getattr(args.optim, "value", args.optim)):
            # Adam divides by sqrt(second moment) + epsilon: 0 where a gradient has always been 0 (padding embeddings)
            remedies.insert(0, "--adam_epsilon 1e-8 (with 0, Adam divides by zero where a gradient is always 0)")
        if not args.max_grad_norm or args.max_grad_norm <= 0:
            remedies.append("--max_grad_norm 1.0")
        remedies.append("a longer warm-up (--warmup_steps)" if args.warmup_steps or args.warmup_ratio
                        else "a warm-up (--warmup_ratio 0.1)")
        if args.fp16:
            remedies.append("--bf16 or fp32 instead of --fp16")
        return (f"training diverged: the loss or the weights became NaN/inf {when} ({rate}); stopped without "
                f"saving or evaluating that model ({kept}); retry with {', '.join(remedies[:-1])} or {remedies[-1]}")

    def save_model(self, output_dir=None, _internal_call=False):
        """The Trainer saves checkpoints and the final model through here: a diverged model is never written (nor
        pushed), nor one whose output folder another run may have taken."""
        self.check_finite()
        if self.args.should_save:
            check_lock_held(self.args.output_dir)
        super().save_model(output_dir, _internal_call=_internal_call)
        if output_dir is not None and CHECKPOINT_NAME.fullmatch(Path(output_dir).name):
            self.saved_checkpoint = output_dir

    def train(self, *args, **kwargs):
        """The Trainer's end of training with --save_total_limit 1 deletes every checkpoint-* folder but the best: only
        those the run record lists are its to delete."""
        import transformers.trainer as trainer_module

        real_sort = trainer_module.sort_checkpoints

        def own_checkpoints(output_dir, *sort_args, **sort_kwargs):
            listed = listed_checkpoints(output_dir)
            return [path for path in real_sort(output_dir, *sort_args, **sort_kwargs)
                    if listed is None or Path(path).name in listed]

        trainer_module.sort_checkpoints = own_checkpoints
        try:
            return super().train(*args, **kwargs)
        finally:
            trainer_module.sort_checkpoints = real_sort

    def _save_checkpoint(self, model, trial):
        """The Trainer's rotation (--save_total_limit) deletes the oldest checkpoint-* folders, whoever wrote them:
        ours (runs.keep_checkpoints) deletes only checkpoints this run saved and listed in its record."""
        import transformers.trainer as trainer_module

        real_rotate = trainer_module.rotate_checkpoints
        trainer_module.rotate_checkpoints = lambda *args, **kwargs: None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            trainer_module.rotate_checkpoints = real_rotate
        if self.args.should_save:
            keep_checkpoints(self._get_output_dir(trial), f"checkpoint-{self.state.global_step}",
                             self.args.save_total_limit, self.state.best_model_checkpoint)

    def prediction_step(self, *args, **kwargs):
        if not self.replays_cuda_graphs:
            return super().prediction_step(*args, **kwargs)
        torch.compiler.cudagraph_mark_step_begin()
        outputs = super().prediction_step(*args, **kwargs)
        # The next batch's replay writes into the same memory, while the Trainer keeps every batch's logits until
        # the end: keep copies.
        return torch.utils._pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, outputs)

    def init_hf_repo(self, *args, **kwargs):
        """--push_to_hub creates the Hub repository before training: a failure there (no network, no token, a name
        of someone else's) is one error line, before any training."""
        try:
            super().init_hf_repo(*args, **kwargs)
        except Exception as error:
            repo = self.args.hub_model_id or Path(self.args.output_dir).absolute().name
            reason = scrub(describe_push_error(error, repo), known_tokens(self.args))
            raise InputError(f"--push_to_hub: could not create the Hub repository {repo} ({reason}); nothing was "
                             "trained: fix that, or drop --push_to_hub and push later with push_to_hub.py") from None

    def _push_from_checkpoint(self, checkpoint_folder):
        """--hub_strategy every_save / checkpoint / all_checkpoints: the Trainer uploads the whole output folder at
        each save, skipping only checkpoint folders. Skip as well what our final push never uploads: predictions and
        failure reports that quote the data, and README.md / MODEL_CARD.md (a README.md may be the user's; the card
        comes with the final push). The Trainer has no public hook for what it uploads: its module's hf_api is wrapped
        for the duration of the call."""
        import transformers.trainer as trainer_module

        real_hf_api, output_dir = trainer_module.hf_api, self.args.output_dir

        class OutputFolderFiltered:
            def __init__(self, api):
                self.api = api

            def __getattr__(self, name):
                return getattr(self.api, name)

            def upload_folder(self, **kwargs):
                if kwargs.get("folder_path") == output_dir:
                    kwargs["ignore_patterns"] = [*(kwargs.get("ignore_patterns") or []), *IGNORE_PATTERNS,
                                                 "README.md", CARD_FALLBACK]
                return self.api.upload_folder(**kwargs)

        trainer_module.hf_api = lambda: OutputFolderFiltered(real_hf_api())
        try:
            super()._push_from_checkpoint(checkpoint_folder)
        finally:
            trainer_module.hf_api = real_hf_api

    def _prepare_inputs(self, inputs):
        inputs = super()._prepare_inputs(inputs)
        if self.args.torch_compile and not self.static_shapes:
            # The batch size changes at the end of an epoch, and the length of every batch with dynamic padding: say
            # so up front, or torch.compile compiles a second time (as long as the first) when the change comes.
            # A length that never changes stays static, which makes faster kernels.
            for value in inputs.values():
                if isinstance(value, torch.Tensor) and value.dim() >= 1:
                    torch._dynamo.maybe_mark_dynamic(value, 0)  # (torch.compiler has no public equivalent)
                    if self.dynamic_lengths and value.dim() >= 2:
                        torch._dynamo.maybe_mark_dynamic(value, 1)
        return inputs

    def _get_eval_sampler(self, eval_dataset):
        if self.args.world_size <= 1:
            return torch.utils.data.SequentialSampler(eval_dataset)
        return None  # distributed: the Trainer's own sequential sharding

    def _get_train_sampler(self, *args, **kwargs):
        dataset = args[0] if args else kwargs.get("train_dataset", self.train_dataset)
        if (self.args.train_sampling_strategy == "group_by_length" and hasattr(dataset, "with_format")
                and "input_ids" in dataset.column_names):
            # The Trainer would measure every row in Python; Arrow has the lengths.
            lengths = pyarrow.compute.list_value_length(dataset.with_format("arrow")["input_ids"]).to_pylist()
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=lengths)
        return super()._get_train_sampler(*args, **kwargs)


class StartSummary(TrainerCallback):
    """One line when training starts, as the transformers examples log theirs: examples, epochs, steps and the
    effective batch (what the recipe's numbers depend on; with several processes the per-device batch is not it)."""

    def __init__(self, train_samples):
        self.train_samples = train_samples

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            print(start_summary(args, state, self.train_samples))


def start_summary(args, state, train_samples):
    processes = max(args.world_size, 1)
    accumulation = args.gradient_accumulation_steps
    batch = args.per_device_train_batch_size * processes * accumulation
    resumed = f", resuming at step {state.global_step:,}" if state.global_step else ""
    epochs = state.num_train_epochs
    return (f"Training: {train_samples:,} examples, {epochs:g} epoch{'s' * (epochs != 1)}, {state.max_steps:,} "
            f"optimizer steps{resumed}; effective batch {batch:,} ({args.per_device_train_batch_size} per device x "
            f"{processes} process{'es' * (processes > 1)} x {accumulation} accumulation step{'s' * (accumulation > 1)})")


def train_and_save(trainer, resume_from, train_samples):
    """Trains, saves the final model, tokenizer and trainer state, writes train_results.json; returns the metrics.
    Rerunning a finished run resumes from its last checkpoint with nothing left to train: its train_results.json
    then stays as the training wrote it (the Trainer would report an empty training: loss 0, no runtime)."""
    resumed_step = (read_json(Path(resume_from) / "trainer_state.json") or {}).get("global_step") if resume_from else None
    # Before the progress bar's callback, which draws its bar at the same event: the line comes above the bar.
    callbacks = trainer.callback_handler.callbacks
    bars = [i for i, callback in enumerate(callbacks) if isinstance(callback, (ProgressCallback, PrinterCallback))]
    callbacks.insert(bars[0] if bars else len(callbacks), StartSummary(train_samples))
    result = trainer.train(resume_from_checkpoint=resume_from)  # (check_training_setup: the checkpoint fits)
    trainer.save_model(_internal_call=True)  # no Trainer push here: ours, at the end, carries our model card
    record_early_stopping(trainer)
    trainer.save_state()
    earlier = read_json(Path(trainer.args.output_dir) / "train_results.json")
    if resumed_step == trainer.state.global_step and earlier:
        logger.warning("Nothing left to train: the run had finished; its train_results.json is kept")
        return earlier
    metrics = {**result.metrics, "train_samples": train_samples}
    trainer.log_metrics("train", metrics)
    if trainer.is_world_process_zero():
        save_metrics(trainer.args.output_dir, "train", metrics)
    return metrics


def record_early_stopping(trainer):
    """The final trainer_state.json carries the patience count as training left it (the Trainer updates it only in
    checkpoints), for the card; the console says when and why training stopped early."""
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, EarlyStoppingCallback):
            trainer.state.stateful_callbacks["EarlyStoppingCallback"] = callback.state()
    note = early_stop_note(dataclasses.asdict(trainer.state), trainer.args.metric_for_best_model)
    if note and trainer.is_world_process_zero():
        print(note)


def finish_run(trainer, task_card, model_args, data_args, metrics, clock):
    """The end of a run, once everything else is written (a failed push leaves a complete output folder): the push
    with --push_to_hub, else the model card of a trained model (for push_to_hub.py); then the per-phase timings."""
    if not trainer.is_world_process_zero():
        return
    args = trainer.args
    card_args = {"task": task_card, "model_args": model_args, "data_args": data_args, "metrics": metrics,
                 "argv": sys.argv}
    if args.push_to_hub:
        push_output_dir(args, **card_args)
        clock.mark("push")
    elif args.do_train:
        save_model_card(args, **card_args)
    print(f"Wall time, seconds per phase: {clock}")  # printed like the Trainer's metrics blocks
