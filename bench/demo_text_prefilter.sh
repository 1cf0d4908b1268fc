#!/usr/bin/env bash
# The demo model's text-to-image ranking on a fresh pedes world, side by side:
# the shipped text pre-filter alone, the VLM re-ranking its default head (top 20) and its top 100,
# and chance (the expected mAP of a random ranking, exact: chatreid.demo.ceilings).
#
#   OMP_NUM_THREADS=1 bash bench/demo_text_prefilter.sh [SEED] [IDS] [OUT]
#
# SEED (default 5000404) and IDS (default 300) draw the world; no demo build trains on seeds
# 5,000,000 and up (chatreid/demo/driver.py WORLD_SEEDS).
set -euo pipefail
seed=${1:-5000404}
ids=${2:-300}
out=${3:-runs/bench-text-prefilter}
export PYTHONPATH=${PYTHONPATH:-$PWD} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python -m chatreid synth --layout pedes --ids "$ids" --seed "$seed" --out "$out/world" --overwrite >/dev/null
run() {  # label, extra eval/run.py options
  local label=$1; shift
  /usr/bin/time -f "$label: %e s" python eval/run.py --model models/chatreid-demo --label "$label" \
      --dataset "synthpeds:$out/world" --vis 0 --batch-size 32 --out "$out/eval" "$@" | grep "mAP [0-9]"
}
run text-prefilter-alone --top-k 1
run vlm-default-head
run vlm-top100 --top-k 100
python -m chatreid.demo ceilings --world "$out/world"
