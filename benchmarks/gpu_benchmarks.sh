#!/usr/bin/env bash
# Every GPU measurement in one command: about 9 minutes on one H100.
# Run from the repository root on the GPU machine, with .gpu/ built by benchmarks/prepare_offline_gpu.sh:
#
#   bash benchmarks/gpu_benchmarks.sh              # results in $OUT (default /tmp/gpu_benchmarks_out)
#   SMOKE=1 PYTHON=.venv/bin/python SKIP_WHEELS=1 bash benchmarks/gpu_benchmarks.sh   # CPU test of this script
#
# Stage times measured on H100s on 2026-11-26: setup ~20 s, a ~8 s, c 101 s and e 81 s (both recipes with CUDA
# graphs; their eager versions took 191 s and > 170 s), a 3-epoch t run 152 s, d 297 s, g 79 s for three variants,
# b ~150 s; f not measured to the end since its fix (~35 s per padding when its check failed).
# Stages run in the order of this file (a f c t d e b g), whatever the order in STAGES.
#
# Stages, each under its own `timeout` (no stage can eat the rest) and each appending its result the moment it ends
# (a run cut short keeps what finished):
#   a  environment + bf16 matmul peak (8192^3)
#   f  preprocessing throughput (benchmarks/bench_preprocess.py), padded to 384 (the MiniLM recipes), then unpadded,
#      then ours alone with 8 and 4 worker processes
#   c  SQuAD v1.1 MiniLM end to end with run_squad.py + recipes/squad/minilm-l6.yaml (anchor hyper-parameters,
#      the speed settings run_squad.py chooses for the machine): wall time from start to metrics, EM/F1
#   t  tuning runs (aiming above F1 83.5): the recipe + each ';'-separated flag set of T_VARIANTS (default
#      "--num_train_epochs 3 --warmup_steps 0.1", the 3-epoch run of BENCHMARKS.md), evaluated every epoch, T_CAP
#      seconds each
#   d  the same data with transformers' run_qa.py (.gpu/baseline) and the anchor's exact command: wall time, EM/F1
#   e  SST-2 MiniLM with run_glue_sst2.py + recipes/sst2/minilm-l6.yaml: wall time, accuracy
#   b  training throughput (bench_train_throughput.py): BERT-base-sized + MiniLM, fp32/bf16, padding, compile, batch;
#      B_CONFIGS chooses the rows; each finished row stays in throughput.jsonl when the stage is cut
#   g  where a Trainer step's time goes (benchmarks/bench_trainer_steps.py): run_squad.py's MiniLM loop under each
#      speed setting on the same windows, steady ms/step, start-up cost, GPU kernel time per step (profiled);
#      G_VARIANTS / G_PROFILE choose the variants
# Files in $OUT (each stage adds at most 2): summary.md, results.jsonl, run.log, throughput.{jsonl,png} (b),
# squad_trainer_state.json + squad_training.png (c), squad_tuned<k>_trainer_state.json (t),
# sst2_trainer_state.json + sst2_training.png (e).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_benchmarks_out}
WORK=${WORK:-/tmp/gpu_benchmarks_work}
PY=${PYTHON:-python3}
RUN_SQUAD=${RUN_SQUAD:-run_squad.py}  # override only to test a patched copy (run it with PYTHONPATH=<repo root>)
SMOKE=${SMOKE:-0}
DEADLINE=${DEADLINE:-530}          # seconds after the start by which every stage must have ended
START=$(date +%s)
mkdir -p "$OUT" "$WORK"
rm -rf "$WORK"/[c-t]*_* "$WORK"/squad_baseline "$WORK"/hf "$WORK"/inductor  # cold caches: every
export TORCHINDUCTOR_CACHE_DIR=$WORK/inductor                                # run pays its own compilation too
SUMMARY=$OUT/summary.md RESULTS=$OUT/results.jsonl LOG=$OUT/run.log
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 HF_HOME=$WORK/hf PYTHONUNBUFFERED=1
want() { [[ " ${STAGES:-a c d e b f g} " == *" $1 "* ]]; }  # STAGES="a c e" runs only those
elapsed() { echo $(( $(date +%s) - START )); }
note() { echo "$*" | tee -a "$LOG" >> "$SUMMARY"; }

# stage NAME CAP_SECONDS COMMAND...: runs COMMAND under min(CAP, time left) seconds; log in $WORK/NAME.log, its
# tail in run.log, one JSON line {stage, rc, wall_s, ...} in results.jsonl.
stage() {
    local name=$1 cap=$2; shift 2
    local left=$(( DEADLINE - $(elapsed) - 5 ))
    local limit=$(( cap < left ? cap : left ))
    if [ "$limit" -lt 15 ]; then
        echo "{\"stage\": \"$name\", \"skipped\": \"only ${left}s left\"}" >> "$RESULTS"
        note "- $name: skipped (only ${left}s left of the run)"
        return 99
    fi
    echo "=== $name (limit ${limit}s, t=$(elapsed)s): $*" >> "$LOG"
    local t0 t1 rc
    t0=$(date +%s.%N)
    timeout -k 10 "$limit" "$@" > "$WORK/$name.log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    STAGE_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    tr '\r' '\n' < "$WORK/$name.log" | grep -v '^[[:space:]]*$' | tail -n "${LOG_TAIL:-40}" | cut -c1-400 >> "$LOG"
    echo "{\"stage\": \"$name\", \"rc\": $rc, \"wall_s\": $STAGE_WALL, \"limit_s\": $limit}" >> "$RESULTS"
    [ $rc -eq 124 ] && note "- $name: TIMED OUT after ${limit}s (partial log in run.log)"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && note "- $name: FAILED rc=$rc after ${STAGE_WALL}s (see run.log)"
    return $rc
}

# metrics FILE STAGE KEYS...: the named keys of a results JSON, one line in results.jsonl and in summary.md.
metrics() {
    local file=$1 name=$2; shift 2
    $PY - "$file" "$name" "$STAGE_WALL" "$@" >> "$RESULTS" 2>> "$LOG" <<'EOF'
import json, sys
path, name, wall, keys = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
try:
    results = json.load(open(path))
except OSError as error:
    print(json.dumps({"stage": name, "metrics_missing": str(error)}))
    sys.exit()
print(json.dumps({"stage": name, "wall_s": wall, **{k: results.get(k) for k in keys}}))
EOF
    tail -n 1 "$RESULTS" | sed 's/^/- /' >> "$SUMMARY"
}

{
    echo "# GPU benchmark run $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Repository: $(git rev-parse --short HEAD 2>/dev/null || echo '?') + working tree; SMOKE=$SMOKE"
    echo
} >> "$SUMMARY"

# ---- setup: wheels the image lacks, data in the layouts each script reads
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
        .gpu/whl/*.whl >> "$LOG" 2>&1 || { note "- setup: wheel install FAILED"; exit 1; }
    export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
fi
mkdir -p "$WORK/data"
if [ "$SMOKE" = 1 ]; then FLAT_LIMIT_TRAIN="--max_questions 48" FLAT_LIMIT_DEV="--max_questions 24"
else FLAT_LIMIT_TRAIN="" FLAT_LIMIT_DEV=""; fi
$PY benchmarks/flatten_squad.py .gpu/data/squad_train.json.gz "$WORK/data/train.json" $FLAT_LIMIT_TRAIN >> "$LOG" 2>&1
$PY benchmarks/flatten_squad.py .gpu/data/squad_dev.json.gz "$WORK/data/dev.json" $FLAT_LIMIT_DEV >> "$LOG" 2>&1
{
    echo "## environment (t=$(elapsed)s)"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    echo "cpus: $(nproc) (CPU quota: $(cat /sys/fs/cgroup/cpu.max 2>/dev/null \
        || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || echo unknown))"
    $PY - <<'EOF'
import importlib, sys
versions = ["python " + sys.version.split()[0]]
for name in ("torch", "transformers", "datasets", "evaluate", "huggingface_hub", "tokenizers", "pyarrow", "fsspec"):
    try:
        versions.append(f"{name} {importlib.import_module(name).__version__}")
    except Exception as error:  # a failing import here explains every later failure
        versions.append(f"{name} IMPORT FAILED ({type(error).__name__}: {error})")
print(" | ".join(versions))
EOF
} >> "$SUMMARY" 2>> "$LOG"
echo >> "$SUMMARY"

if [ "$SMOKE" = 1 ]; then  # CPU: tiny everything, same code paths (the scripts choose fp32, eager on a CPU)
    BASELINE_PRECISION=""
    THROUGHPUT_ARGS="--configs ${B_CONFIGS:-tiny:fp32:max:8 tiny:fp32:dynamic:8 tiny:fp32:grouped:8 minilm:fp32:grouped:8} --steps 2 --warmup 1 --questions 300 --time_budget 60"
    SQUAD_SMOKE="--max_train_samples 48 --max_eval_samples 24 --max_seq_length 128 --doc_stride 32 --num_train_epochs 1 --preprocessing_num_workers 2 --dataloader_num_workers 1 --per_device_eval_batch_size 16 --logging_steps 1"
    BASELINE_SMOKE="--max_seq_length 128 --doc_stride 32 --num_train_epochs 1"
    SST2_SMOKE="--max_train_samples 64 --max_eval_samples 32 --num_train_epochs 1 --dataloader_num_workers 1 --logging_steps 1"
    STEPS_SMOKE="--steps 6 --warm 2 --questions 100 --batch_size 4"
else
    BASELINE_PRECISION="--bf16" THROUGHPUT_ARGS="${B_CONFIGS:+--configs $B_CONFIGS} --time_budget ${B_BUDGET:-125}"
    SQUAD_SMOKE="" BASELINE_SMOKE="" SST2_SMOKE=""
fi

# squad_ours STAGE CAP [FLAGS...] / sst2_ours STAGE CAP [FLAGS...]: our script + MiniLM recipe on the run's
# data, output in $WORK/STAGE, its metrics as one results line (used by stages c, t and e)
squad_ours() {
    stage "$1" "$2" $PY "$RUN_SQUAD" recipes/squad/minilm-l6.yaml --model_name_or_path .gpu/minilm \
        --train_file .gpu/data/squad_train.json.gz --validation_file .gpu/data/squad_dev.json.gz \
        --output_dir "$WORK/$1" --overwrite_output_dir true $SQUAD_SMOKE "${@:3}"
    local rc=$?
    metrics "$WORK/$1/all_results.json" "$1" eval_exact_match eval_f1 train_runtime \
        train_samples_per_second train_samples eval_samples
    grep -a "^Wall time" "$WORK/$1.log" | sed 's/^/    /' >> "$SUMMARY"  # the script's own phase times
    return $rc
}
sst2_ours() {
    stage "$1" "$2" $PY run_glue_sst2.py recipes/sst2/minilm-l6.yaml --model_name_or_path .gpu/minilm \
        --train_file .gpu/data/sst2_train.tsv.gz --validation_file .gpu/data/sst2_dev.tsv.gz \
        --output_dir "$WORK/$1" --overwrite_output_dir true $SST2_SMOKE "${@:3}"
    local rc=$?
    metrics "$WORK/$1/all_results.json" "$1" eval_accuracy eval_f1 train_runtime train_samples_per_second \
        train_samples eval_samples
    grep -a "^Wall time" "$WORK/$1.log" | sed 's/^/    /' >> "$SUMMARY"
    return $rc
}

if want a; then
# ---- a. environment + bf16 matmul peak
echo "## a. bf16 matmul peak" >> "$SUMMARY"
rm -f "$WORK/peak.jsonl"  # a second run on the same machine measures its own peak
stage a_peak 60 $PY benchmarks/bench_train_throughput.py --peak_only --out "$WORK/peak.jsonl" \
    && sed 's/^/    /' "$WORK/peak.jsonl" >> "$SUMMARY"
PEAK=$($PY -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['environment']['bf16_matmul_peak_tflops'])" "$WORK/peak.jsonl" 2>/dev/null || echo "")
fi

if want f; then
# ---- f. preprocessing throughput on this machine's cores
echo "## f. preprocessing throughput (t=$(elapsed)s)" >> "$SUMMARY"
for padding in --pad_to_max_length ""; do  # padded as the MiniLM recipes (CUDA graphs) and run_qa.py, then not
    stage f_preprocess${padding:+_padded} 60 $PY benchmarks/bench_preprocess.py $padding \
        ${PREPROCESS_ARGS:---squad_dir .gpu/data --train_file squad_train.json.gz --tokenizer_name .gpu/minilm}
    tr '\r' '\n' < "$WORK/f_preprocess${padding:+_padded}.log" | grep -v '^[[:space:]]*$' | grep -v '%|' \
        | tail -n 7 | sed 's/^/    /' >> "$SUMMARY"
done
for processes in 8 4; do  # fewer workers: does the machine give 16 processes 16 cores' worth?
    stage f_preprocess_${processes}p 30 $PY benchmarks/bench_preprocess.py --pad_to_max_length --ours_only \
        --num_proc $processes \
        ${PREPROCESS_ARGS:---squad_dir .gpu/data --train_file squad_train.json.gz --tokenizer_name .gpu/minilm}
    grep -a -e "windows (" -e "^ours:" "$WORK/f_preprocess_${processes}p.log" | sed 's/^/    /' >> "$SUMMARY"
done
fi

if want c; then
# ---- c. SQuAD, ours
echo "## c. SQuAD v1.1 MiniLM, run_squad.py + recipes/squad/minilm-l6.yaml (t=$(elapsed)s)" >> "$SUMMARY"
squad_ours c_squad_ours 220
cp "$WORK/c_squad_ours/trainer_state.json" "$OUT/squad_trainer_state.json" 2>/dev/null
$PY benchmarks/plot_training.py curves "$WORK/c_squad_ours" --out "$OUT/squad_training.png" \
    --title "SQuAD v1.1, MiniLM-L6, recipes/squad/minilm-l6.yaml" >> "$LOG" 2>&1
fi

if want t; then
# ---- t. SQuAD tuning runs, aiming above F1 83.5: the recipe + each ';'-separated flag set of T_VARIANTS,
# evaluated after every epoch; run k keeps its trainer_state as squad_tuned<k>_trainer_state.json
echo "## t. SQuAD v1.1 MiniLM tuning, recipe + T_VARIANTS (t=$(elapsed)s)" >> "$SUMMARY"
IFS=';' read -ra T_RUNS <<< "${T_VARIANTS:---num_train_epochs 3 --warmup_steps 0.1}"
for k in "${!T_RUNS[@]}"; do
    read -ra T_FLAGS <<< "${T_RUNS[$k]}"
    echo "### t$((k + 1)): ${T_FLAGS[*]}" >> "$SUMMARY"
    squad_ours t$((k + 1))_squad_tuned ${T_CAP:-240} "${T_FLAGS[@]}" --eval_strategy epoch
    [ $? -eq 99 ] && continue  # skipped: no time left
    cp "$WORK/t$((k + 1))_squad_tuned/trainer_state.json" "$OUT/squad_tuned$((k + 1))_trainer_state.json" 2>/dev/null \
        && $PY -c "import json, sys; print('    per epoch (EM / F1): ' + '; '.join(f\"{e['epoch']:g}: {e['eval_exact_match']:.2f} / {e['eval_f1']:.2f}\" for e in json.load(open(sys.argv[1]))['log_history'] if 'eval_f1' in e))" "$OUT/squad_tuned$((k + 1))_trainer_state.json" >> "$SUMMARY" 2>> "$LOG"
done
fi

if want d; then
# ---- d. SQuAD, transformers' run_qa.py with the anchor's hyper-parameters
echo "## d. SQuAD v1.1 MiniLM, transformers run_qa.py, anchor command (t=$(elapsed)s)" >> "$SUMMARY"
stage d_squad_baseline 320 $PY .gpu/baseline/run_qa.py --model_name_or_path .gpu/minilm \
    --train_file "$WORK/data/train.json" --validation_file "$WORK/data/dev.json" --do_train --do_eval \
    --per_device_train_batch_size 32 --learning_rate 1e-4 --num_train_epochs 2 $BASELINE_PRECISION \
    --max_seq_length 384 --doc_stride 128 --seed 42 --save_strategy no --report_to none \
    --output_dir "$WORK/squad_baseline" $BASELINE_SMOKE
metrics "$WORK/squad_baseline/all_results.json" d_squad_baseline eval_exact_match eval_f1 train_runtime \
    train_samples_per_second train_samples eval_samples
fi

if want e; then
# ---- e. SST-2
echo "## e. SST-2 MiniLM, run_glue_sst2.py + recipes/sst2/minilm-l6.yaml (t=$(elapsed)s)" >> "$SUMMARY"
sst2_ours e_sst2 ${E_CAP:-220}
cp "$WORK/e_sst2/trainer_state.json" "$OUT/sst2_trainer_state.json" 2>/dev/null
$PY benchmarks/plot_training.py curves "$WORK/e_sst2" --out "$OUT/sst2_training.png" \
    --title "SST-2, MiniLM-L6, recipes/sst2/minilm-l6.yaml" >> "$LOG" 2>&1
fi

if want b; then
# ---- b. training throughput
echo "## b. training throughput (t=$(elapsed)s)" >> "$SUMMARY"
stage b_throughput ${B_CAP:-170} $PY benchmarks/bench_train_throughput.py $THROUGHPUT_ARGS ${PEAK:+--peak_tflops $PEAK} \
    --out "$OUT/throughput.jsonl"
sed -n '/^| config/,$p' "$WORK/b_throughput.log" >> "$SUMMARY"
$PY benchmarks/plot_training.py throughput "$OUT/throughput.jsonl" --out "$OUT/throughput.png" >> "$LOG" 2>&1
fi

if want g; then
# ---- g. Trainer step time per speed setting
echo "## g. Trainer step time per speed setting (t=$(elapsed)s)" >> "$SUMMARY"
stage g_trainer_steps ${G_CAP:-170} $PY benchmarks/bench_trainer_steps.py --model .gpu/minilm \
    --squad_file .gpu/data/squad_train.json.gz ${G_VARIANTS:+--variants $G_VARIANTS} \
    --profile ${G_PROFILE:-nosync cudagraphs} --time_budget ${G_BUDGET:-120} \
    --out "$WORK/steps.jsonl" ${STEPS_SMOKE:-}
sed -n '/^| variant/,$p' "$WORK/g_trainer_steps.log" >> "$SUMMARY"
fi

echo >> "$SUMMARY"
echo "Run ended at t=$(elapsed)s (deadline ${DEADLINE}s)." >> "$SUMMARY"
cat "$SUMMARY"
