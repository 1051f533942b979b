#!/usr/bin/env bash
# One GPU lease's work for the default model, as one command (a lease is short: ~10 minutes):
#   1. time 300 training steps at batch 512 and size the fine-tune to TRAIN_S seconds;
#   2. fine-tune $INIT (default: the shipped model) on the GPU, cosine schedule over exactly those steps;
#   3. evaluate it: every row of scripts.evaluate_default, DDPM-1000 at 5k samples included;
#   4. the CUDA code-path tests (tests/test_cuda.py).
# Results go to $OUT: mnist-gpu.tgz (the save_pretrained folder with its card, training.json,
# quality.json) and run.log. Usage on the GPU machine, from the repo root:
#   OUT=/tmp/out TRAIN_S=240 bash training/gpu_run.sh
set -u
OUT=${OUT:-/tmp/gpu_out}
TRAIN_S=${TRAIN_S:-240}
DEVICE=${DEVICE:-cuda}
EVAL_ARGS=${EVAL_ARGS:-}
BATCH=${BATCH:-512}
INIT=${INIT:-assets/default}
WORK=/tmp/gpu_work
[ -d .gpudata ] && export DADQ_DATA=$PWD/.gpudata  # ../shared does not travel to a GPU machine
mkdir -p "$OUT" "$WORK"
LOG="$OUT/run.log"
export PYTHONUNBUFFERED=1
exec > >(tee -a "$LOG") 2>&1
if [ -d .whl ]; then  # packages the GPU image lacks (diffusers), carried as wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
date; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)"

pack() { rm -f "$OUT/mnist-gpu.tgz"; tar -czf "$OUT/mnist-gpu.tgz" -C "$WORK" mnist-gpu; }

echo "== probe"
timeout 120 python3 -m scripts.train_default --device "$DEVICE" --dataset mnist --steps 300 --batch "$BATCH" \
  --grid-steps 0 --out "$WORK/probe" --checkpoint "$WORK/probe.ckpt" 2>&1 | grep -v "it/s\|step/s" | tail -3
RATE=$(python3 -c "import json; m = json.load(open('$WORK/probe/training.json')); print(m['steps'] / m['wall_time_s'])")
STEPS=$(python3 -c "print(max(100, int($RATE * $TRAIN_S / 100) * 100))")
echo "probe: $RATE steps/s -> $STEPS steps"

echo "== fine-tune"
timeout $((TRAIN_S * 2 + 60)) python3 -m scripts.train_default --device "$DEVICE" --dataset mnist \
  --init-from "$INIT" --steps "$STEPS" --batch "$BATCH" --lr 5e-4 --seed 2 --ema-decay 0.9995 \
  --no-ema-warmup --max-minutes "$(python3 -c "print(round($TRAIN_S * 1.5 / 60, 1))")" --out "$WORK/mnist-gpu" \
  --checkpoint "$WORK/gpu.ckpt" 2>&1 | grep -v "step/s" | tail -25
pack

echo "== evaluate"
timeout 300 python3 -m scripts.evaluate_default --model "$WORK/mnist-gpu" --device "$DEVICE" $EVAL_ARGS 2>&1 \
  | grep -v "it/s\|s/it"
pack

echo "== CUDA code paths"
timeout 150 python3 -m pytest -q -s -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -15
date
