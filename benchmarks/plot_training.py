#!/usr/bin/env python
"""Pictures of a run and of the throughput table.

    python benchmarks/plot_training.py curves OUTPUT_DIR_OR_trainer_state.json [--out curves.png] [--title T]
    python benchmarks/plot_training.py throughput throughput.jsonl [--out throughput.png]

curves: training loss over steps (left axis) and every eval_* metric the run logged (eval_accuracy, eval_f1,
eval_exact_match, ...; right axis, one marker per evaluation) from the Trainer's trainer_state.json, plus the
final evaluation from eval_results.json beside it (run_squad.py and run_glue_sst2.py save the state before it).
throughput: one bar per config of bench_train_throughput.py's JSON lines, samples/s, labelled with real tokens/s
and MFU; bars coloured by padding strategy.
"""

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

SKIPPED_EVAL_KEYS = ("eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "eval_samples")
PADDING_COLOURS = {"max": "#c44e52", "dynamic": "#dd8452", "grouped": "#4c72b0"}


def load_state(path):
    path = Path(path)
    if path.is_dir():
        path = path / "trainer_state.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; give a Trainer output folder or its trainer_state.json")
    return json.loads(path.read_text(encoding="utf-8")), path


def curves(args):
    state, path = load_state(args.source)
    history = state.get("log_history", [])
    losses = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evals = {}
    for h in history:
        for key, value in h.items():
            if key.startswith("eval_") and key not in SKIPPED_EVAL_KEYS and isinstance(value, (int, float)):
                evals.setdefault(key, []).append((h["step"], value))
    # Our scripts save trainer_state.json before the final evaluation: take its metrics from eval_results.json.
    final = path.with_name("eval_results.json")
    if final.is_file():
        step = state.get("global_step", losses[-1][0] if losses else 0)
        for key, value in json.loads(final.read_text(encoding="utf-8")).items():
            if key.startswith("eval_") and key not in SKIPPED_EVAL_KEYS and isinstance(value, (int, float)):
                points = evals.setdefault(key, [])
                if not points or points[-1][0] != step:
                    points.append((step, value))
    if not losses and not evals:
        raise SystemExit(f"{path}: the log history holds no loss and no eval metric to plot")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    if losses:
        ax.plot(*zip(*losses), color="#4c72b0", linewidth=1.5, label="training loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss", color="#4c72b0")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if evals:
        right = ax.twinx()
        colours = ("#c44e52", "#55a868", "#8172b2", "#ccb974", "#64b5cd")
        for i, ((key, points), colour) in enumerate(zip(sorted(evals.items()), colours * 4)):
            right.plot(*zip(*points), marker="o", color=colour, linewidth=1.2, label=key)
            step, value = points[-1]
            right.annotate(f"{value:.4g}", (step, value), textcoords="offset points", xytext=(-30, 6 - 12 * i),
                           fontsize=8, color=colour)
        right.set_ylabel("eval metric")
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, fontsize=8, frameon=False)
    ax.set_title(args.title or f"{path.parent.name}: {state.get('global_step', '?')} steps, "
                                f"{state.get('epoch', 0):.3g} epochs", fontsize=10)
    fig.tight_layout()
    out = args.out or str(path.with_name("training_curves.png"))
    fig.savefig(out)
    print(f"wrote {out}")


def throughput(args):
    rows, environment = [], {}
    for line in Path(args.source).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if "environment" in record:
            environment = record["environment"]
        elif "samples_per_s" in record:
            rows.append(record)
    if not rows:
        raise SystemExit(f"{args.source}: no measured configs in it")
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.6), dpi=120)
    names = [r["config"] for r in rows]
    values = [r["samples_per_s"] for r in rows]
    colours = [PADDING_COLOURS.get(r["padding"], "grey") for r in rows]
    bars = ax.barh(range(len(rows)), values, color=colours)
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    for bar, r in zip(bars, rows):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f"  {r['samples_per_s']:,.0f}/s · {r['real_tokens_per_s'] / 1e3:,.0f}k real tok/s · MFU {r['mfu']:.0%}",
                va="center", fontsize=7)
    ax.set_xlim(0, max(values) * 1.6)
    ax.set_xlabel("training samples per second (SQuAD windows, max 384 tokens)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in PADDING_COLOURS.values()]
    ax.legend(handles, [f"padding: {p}" for p in PADDING_COLOURS], fontsize=7, loc="lower right")
    device = environment.get("gpu") or environment.get("cpu") or "?"
    peak = environment.get("bf16_matmul_peak_tflops")
    ax.set_title(f"Training throughput on {device} (bf16 matmul peak measured: {peak} TFLOP/s)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = args.out or str(Path(args.source).with_suffix(".png"))
    fig.savefig(out)
    print(f"wrote {out}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["curves", "throughput"])
    parser.add_argument("source")
    parser.add_argument("--out", default=None)
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    curves(args) if args.kind == "curves" else throughput(args)


if __name__ == "__main__":
    sys.exit(main())
