"""What several seeds of one recipe measured: per metric the mean, the sample standard deviation, the range and
each seed's value (seeds_summary.json), as a Markdown table and as a strip chart (run_seeds.py writes them)."""

import os
import statistics
import tempfile
from pathlib import Path

from finetune.outputs import FILE_MODE

# eval_results.json keys that are not measurements of the model
NOT_METRICS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "eval_samples")


def metric_names(results):
    """eval_* metric keys of the evaluations, in the order the first one lists them; intervals left out."""
    names = {}
    for metrics in results.values():
        for key, value in metrics.items():
            if (key.startswith("eval_") and key not in NOT_METRICS and not key.endswith(("_ci_low", "_ci_high"))
                    and isinstance(value, (int, float)) and not isinstance(value, bool)):
                names[key] = None
    return list(names)


def summarize(results, diverged=()):
    """{metric without eval_: {mean, std, min, max, n, values {seed: value}, diverged [seeds]}} of {seed: the
    eval_results.json of a finished seed}. std is the sample standard deviation (None for one seed)."""
    summary = {}
    for key in metric_names(results):
        values = {str(seed): metrics[key] for seed, metrics in results.items() if key in metrics}
        numbers = list(values.values())
        summary[key.removeprefix("eval_")] = {
            "mean": statistics.fmean(numbers), "std": statistics.stdev(numbers) if len(numbers) > 1 else None,
            "min": min(numbers), "max": max(numbers), "n": len(numbers), "values": values,
            "diverged": sorted(diverged)}
    return summary


def number(value):
    return "-" if value is None else f"{value:.4g}"


def summary_table(summary, seeds, command):
    """seeds_summary.md: one row per metric, one column per seed."""
    header = ["metric", "mean ± std", "min", "max", "n", *(f"seed {seed}" for seed in seeds)]
    lines = [f"`{command}`", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for name, entry in summary.items():
        cells = [name, f"{number(entry['mean'])} ± {number(entry['std'])}", number(entry["min"]),
                 number(entry["max"]), str(entry["n"])]
        cells += [number(entry["values"].get(str(seed))) if seed not in entry["diverged"] else "diverged"
                  for seed in seeds]
        lines.append("| " + " | ".join(cells) + " |")
    diverged = next(iter(summary.values()), {}).get("diverged") if summary else None
    if diverged:
        lines += ["", f"Diverged, not averaged: seed {', '.join(map(str, diverged))}."]
    if not summary:
        lines += ["", "No seed finished: nothing to summarize."]
    return "\n".join(lines) + "\n"


def save_strip_chart(summary, path, title):
    """One row per metric: each seed's value as a labelled dot, the mean as a line, mean ± std shaded."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    names = list(summary) or ["(no finished seed)"]
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 0.6 + 1.1 * len(names)), dpi=120, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        entry = summary.get(name)
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        if not entry:
            continue
        if entry["std"]:
            ax.axvspan(entry["mean"] - entry["std"], entry["mean"] + entry["std"], color="#4c72b0", alpha=0.15)
        ax.axvline(entry["mean"], color="#4c72b0", linewidth=1)
        for i, (seed, value) in enumerate(entry["values"].items()):
            height = (i % 3 - 1) * 0.3  # three heights, so that seeds with equal values stay apart
            ax.plot(value, height, "o", color="#c44e52")
            ax.annotate(seed, (value, height), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
        ax.set_ylim(-0.8, 0.8)
        ax.margins(x=0.15)
    axes[0, 0].set_title(f"{title} (line: mean; band: ± 1 std)", fontsize=10)
    fig.tight_layout()
    fd, temporary = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{Path(path).name}.", suffix=".png")
    os.close(fd)
    try:
        os.chmod(temporary, FILE_MODE)  # (mkstemp's files are private)
        fig.savefig(temporary)
        os.replace(temporary, path)  # a reader never sees half a picture
    except BaseException:
        os.unlink(temporary)
        raise
    finally:
        plt.close(fig)
