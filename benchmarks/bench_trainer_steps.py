#!/usr/bin/env python
"""Where the time of a training step goes inside the Trainer: run_squad.py's SQuAD training loop for MiniLM under
several speed settings, on the same tokenized windows, one after the other in one process.

    python benchmarks/bench_trainer_steps.py [--variants NAME ...] [--steps 300] [--questions 12000] [--out F.jsonl]

Variants (each one: fresh MiniLM weights, batch 32, lr 1e-4, fused AdamW, bf16 + tf32 on a GPU, --steps steps):
    baseline         transformers' run_qa.py: windows padded to 384, random batches, the Trainer's defaults
                     (NaN/Inf loss filter on: a GPU sync per step; blocking host-to-GPU copies; no loader workers)
    nosync           baseline + filter off, non-blocking copies from pinned memory, 4 loader workers
    dynamic          nosync, each batch padded to its longest window (multiple of 8) instead of 384
    grouped          dynamic + length-grouped batches (the Trainer's group_by_length)
    cudagraphs       nosync (384) + torch.compile backend "cudagraphs": the eager kernels replayed as CUDA graphs,
                     no Inductor code generation
    compile          grouped + torch.compile (Inductor, one compilation for all shapes)
    reduce-overhead  nosync (384) + torch.compile mode "reduce-overhead" (Inductor kernels + CUDA graphs)
Reported per variant: seconds to the end of step --warm (first-call costs: compilation, graph recording, worker
start), then steady ms/step and samples/s over the remaining steps, and compiled graphs. With --profile NAME ...,
20 more steps of those variants run under torch.profiler: GPU kernel time per step against wall time per step
tells whether the loop waits for the GPU or the GPU waits for the loop. --random_init builds the model from the
config of --model (a folder without weights, such as assets/tiny-bert, for a CPU check of this script).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import datasets
import torch
from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding, TrainerCallback

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_train_throughput import default_minilm, default_squad, record  # noqa: E402
from finetune.arguments import TrainingArguments  # noqa: E402
from finetune.data import preprocessing_processes  # noqa: E402
from finetune.trainer import OrderedEvalTrainer  # noqa: E402
from finetune.data import load_squad_file  # noqa: E402
from utils_qa import prepare_train_features  # noqa: E402

NOSYNC = {"logging_nan_inf_filter": False, "accelerator_config": {"non_blocking": True}, "dataloader_num_workers": 4,
          "dataloader_pin_memory": True, "dataloader_persistent_workers": True}
VARIANTS = {  # name: (padded to 384?, TrainingArguments overrides)
    "baseline": (True, {"dataloader_num_workers": 0}),
    "nosync": (True, NOSYNC),
    "dynamic": (False, NOSYNC),
    "grouped": (False, {**NOSYNC, "train_sampling_strategy": "group_by_length"}),
    "cudagraphs": (True, {**NOSYNC, "torch_compile": True, "torch_compile_backend": "cudagraphs"}),
    "compile": (False, {**NOSYNC, "train_sampling_strategy": "group_by_length", "torch_compile": True}),
    "reduce-overhead": (True, {**NOSYNC, "torch_compile": True, "torch_compile_mode": "reduce-overhead"}),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warm", type=int, default=30, help="Steps counted as start-up, not steady state.")
    parser.add_argument("--questions", type=int, default=12000, help="First N SQuAD training questions.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=384)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--squad_file", default=default_squad())
    parser.add_argument("--model", default=default_minilm(), help="MiniLM folder (weights + tokenizer).")
    parser.add_argument("--profile", nargs="*", default=[], choices=list(VARIANTS),
                        help="Profile 20 more steps of these variants.")
    parser.add_argument("--random_init", action="store_true", help="Model from --model's config, random weights.")
    parser.add_argument("--time_budget", type=float, default=None, help="Seconds: later variants are skipped.")
    parser.add_argument("--out", default=None, help="Append one JSON line per variant here.")
    return parser.parse_args(argv)


class StepClock(TrainerCallback):
    """Wall time at the start of training, at the end of step `warm` and at the end of the last step (the GPU is
    synchronized at those two steps only, so the loop runs as it does in a real run in between)."""

    def __init__(self, warm, mark_cudagraph_steps, profile_steps=0):
        self.warm, self.mark, self.profile_steps = warm, mark_cudagraph_steps, profile_steps
        self.times, self.profiler = {}, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.times["begin"] = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        if self.mark:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's graph outputs may now be overwritten

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.warm:
            synchronize()
            self.times["warm"] = time.perf_counter()
        elif state.global_step == state.max_steps - self.profile_steps:
            synchronize()
            self.times["end"] = time.perf_counter()
            if self.profile_steps:
                self.profiler = torch.profiler.profile(activities=profiler_activities())
                self.profiler.__enter__()
                self.times["profile_begin"] = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        if self.profiler is not None:
            synchronize()
            self.times["profile_end"] = time.perf_counter()
            self.profiler.__exit__(None, None, None)


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def profiler_activities():
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    return activities


def kernel_seconds(profiler):
    """Total time of the GPU kernels (and copies) the profiler saw; on a CPU, 0."""
    events = profiler.events()
    return sum(getattr(e, "self_device_time_total", 0) for e in events
               if str(getattr(e, "device_type", "")).endswith("CUDA")) / 1e6


def windows(args, tokenizer, padded):
    examples = datasets.Dataset.from_list(load_squad_file(args.squad_file)[: args.questions])
    prepare = partial(prepare_train_features, tokenizer=tokenizer, max_seq_length=args.max_seq_length,
                      doc_stride=args.doc_stride, max_query_length=min(64, args.max_seq_length // 4),
                      pad_to_max_length=padded)
    return examples.map(prepare, batched=True, remove_columns=examples.column_names,
                        num_proc=preprocessing_processes(os.cpu_count(), len(examples)))  # as run_squad.py


def run_variant(name, args, tokenizer, features, profile):
    padded, overrides = VARIANTS[name]
    torch._dynamo.reset()
    on_gpu = torch.cuda.is_available()
    profile_steps = 20 if profile else 0
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir, max_steps=args.steps + profile_steps, per_device_train_batch_size=args.batch_size,
            learning_rate=1e-4, optim="adamw_torch_fused", bf16=on_gpu, tf32=on_gpu, save_strategy="no",
            logging_steps=100, report_to="none", disable_tqdm=True, seed=42, use_cpu=not on_gpu, **overrides,
        )
        if args.random_init:
            model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(args.model))
        else:
            model = AutoModelForQuestionAnswering.from_pretrained(args.model)
        model.accepts_loss_kwargs = False
        clock = StepClock(args.warm, mark_cudagraph_steps=name in ("cudagraphs", "reduce-overhead"),
                          profile_steps=profile_steps)
        pad_multiple = 8 if on_gpu else None
        trainer = OrderedEvalTrainer(
            model=model, args=training_args, train_dataset=features[padded], processing_class=tokenizer,
            data_collator=None if padded else DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple),
            callbacks=[clock], dynamic_lengths=not padded,
        )
        trainer.train()
    times = clock.times
    steady = (times["end"] - times["warm"]) / (args.steps - args.warm)
    row = {"variant": name, "steps": args.steps, "batch_size": args.batch_size,
           "startup_s": round(times["warm"] - times["begin"], 2), "ms_per_step": round(steady * 1e3, 2),
           "samples_per_s": round(args.batch_size / steady, 1),
           "compiled_graphs": torch._dynamo.utils.counters["stats"]["unique_graphs"]}
    if clock.profiler is not None:
        wall = (times["profile_end"] - times["profile_begin"]) / profile_steps
        row["profile_wall_ms_per_step"] = round(wall * 1e3, 2)
        row["profile_gpu_ms_per_step"] = round(kernel_seconds(clock.profiler) / profile_steps * 1e3, 2)
    torch._dynamo.utils.counters.clear()
    return row


def main(argv=None):
    args = parse_args(argv)
    began = time.perf_counter()
    datasets.disable_caching()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    needed = {VARIANTS[name][0] for name in args.variants}
    features = {padded: windows(args, tokenizer, padded) for padded in needed}
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(json.dumps({"device": device, "torch": torch.__version__, "windows": len(next(iter(features.values()))),
                      "setup_s": round(time.perf_counter() - began, 1)}), flush=True)
    rows = []
    for name in args.variants:
        if args.time_budget is not None and time.perf_counter() - began > args.time_budget:
            row = {"variant": name, "skipped": "time budget"}
        else:
            try:
                row = run_variant(name, args, tokenizer, features, profile=name in args.profile)
            except Exception as error:  # one failing variant (e.g. graphs on an old driver) must not end the table
                row = {"variant": name, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
        rows.append(row)
        record(row, args.out)
    print()
    print(f"| variant | start-up s (first {args.warm} steps) | ms/step | samples/s | graphs | profiled: wall ms/step "
          "| profiled: GPU kernel ms/step |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        if "ms_per_step" not in r:
            print(f"| {r['variant']} | {r.get('error') or r.get('skipped')} | | | | | |")
            continue
        print(f"| {r['variant']} | {r['startup_s']} | {r['ms_per_step']} | {r['samples_per_s']:,} | "
              f"{r['compiled_graphs']} | {r.get('profile_wall_ms_per_step', '')} | {r.get('profile_gpu_ms_per_step', '')} |")


if __name__ == "__main__":
    main()
