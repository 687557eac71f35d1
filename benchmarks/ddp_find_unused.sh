#!/bin/bash
# DDP with and without the Trainer's per-step search for unused parameters: two processes (torchrun, gloo on a CPU,
# one thread each), MiniLM on SST-2 training sentences, 40 optimizer steps; the two settings alternate, ROUNDS times.
# Prints each run's train_runtime and steps/s, and how often torch warned that the search found nothing.
#   MODEL=path/to/minilm bash benchmarks/ddp_find_unused.sh [ROUNDS]
set -u
MODEL=${MODEL:?set MODEL to a MiniLM (BERT) model folder}
SST2_TRAIN=${SST2_TRAIN:-../shared/data/sst2/train.tsv}
OUT=${OUT:-/tmp/ddp-find-unused}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 OMP_NUM_THREADS=1
for round in $(seq "${1:-2}"); do
  for find in true false; do
    out=$OUT/$find-$round
    rm -rf "$out"
    python -m torch.distributed.run --standalone --nproc_per_node 2 run_glue_sst2.py recipes/sst2/minilm-l6.yaml \
      --model_name_or_path "$MODEL" --train_file "$SST2_TRAIN" --max_train_samples 2000 --do_eval false \
      --max_steps 40 --per_device_train_batch_size 16 --save_strategy no --logging_steps 40 --eval_strategy no \
      --preprocessing_num_workers 1 --disable_tqdm --output_dir "$out" --ddp_find_unused_parameters $find \
      > "$out.log" 2>&1 || { echo "round $round find_unused=$find failed: $out.log"; continue; }
    python -c "import json, sys; d = json.load(open(sys.argv[1])); print('round', sys.argv[2], 'find_unused=' + \
sys.argv[3], 'train_runtime', d['train_runtime'], 'steps/s', d['train_steps_per_second'], end=' ')" \
      "$out/train_results.json" "$round" "$find"
    echo "torch warnings: $(grep -c 'find_unused_parameters=True was specified' "$out.log")"
  done
done
