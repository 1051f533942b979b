#!/usr/bin/env bash
# One GPU lease's checks (a lease is ~10 minutes of one command), in this order:
#   1. the CUDA code-path tests (tests/test_cuda.py), alone: ~30 s on an H200;
#   2. the time of a full profile of the CIFAR-10 DDPM architecture (benchmarks.profile_cifar10), alone, cut at
#      CIFAR_S seconds (its result records how far it got);
#   3. 5k-sample FIDs on the default model, seeds 1-3 (experiments.sweep --device cuda): the headline rows (SWEEP_A)
#      and the variants (SWEEP_B), two processes sharing one cell cache, for FID_MIN minutes; cells sampled on the
#      GPU are keyed "device=cuda", apart from the CPU's. A 5k row took 8-44 s on an H200.
# What comes back in $OUT: the logs, the cell cache with the new cells merged in, the two sweep results and the
# CIFAR-10 timing. Merge the cache into experiments/results/ (python -m experiments.cells --merge) and assemble the
# result on the CPU with the same sweep command and --max-minutes 0. Usage on the GPU machine, from the repo root
# (the GPU image lacks diffusers and plotly: carry them as wheels in .whl/):
#   OUT=/tmp/out CIFAR_S=200 FID_MIN=5 bash scripts/gpu_checks.sh
set -u
OUT=${OUT:-/tmp/gpu_out}
FID_MIN=${FID_MIN:-5}
CIFAR_S=${CIFAR_S:-200}
DEVICE=${DEVICE:-cuda}
FID_N=${FID_N:-5000}
FID_STEPS=${FID_STEPS:-50}
WORK=/tmp/gpu_work
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
exec 3>&1 >>"$OUT/run.log" 2>&1  # a plain file: bash's wait would also wait on a tee process substitution
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
date; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, torch.cuda.is_available())"

CACHE=$WORK/sweep_fid5k.cells.json
cp experiments/results/sweep_fid5k.cells.json "$CACHE"
P=experiments/results/profiles
PROFILES=gptq=$P/gptq/default_gptq_bc_calib16.safetensors,act=$P/gptq_act/default_gptqact_bc_calib16.safetensors
PROFILES=$PROFILES,c32=assets/default/profile.safetensors,c64=$P/calib/default_gptqact_bc_calib64.safetensors
PROFILES=$PROFILES,asym=$P/grid/default_gptqact_bc_calib32_asym.safetensors
SWEEP_A=${SWEEP_A:-fp,w:4:exact:c32:mean:gain0.5,w:4:uniform:c32:ends8,w:4:exact,w:3:exact:asym:mean:gain0.5,w:3:uniform:asym:ends8,w:3:exact,w4a:8:exact:c32:mean:fpin:gain0.5,w4a:8:uniform:c32:ends8:fpin,wa:6:exact:c32:mean:fpin,wa:6:uniform:c32:ends8:fpin,wa:6:exact,wa:4:exact:asym:mean:fpin,wa:4:uniform:c32:ends8:fpin,wa:4:exact}
SWEEP_B=${SWEEP_B:-w:3:exact:asym:mean,w:3:exact:asym:mean:gain0.25,w:3:exact:asym:mean:gain1,w:3:exact:c64:mean:gain0.5,wa:6:exact:c32:mean:fpin:gain0.5,wa:6:exact:asym:mean:fpin:gain0.5,wa:6:exact:c64:mean:fpin:gain0.5,w4a:8:exact:c32:mean:fpin:gain0.25,w4a:8:exact:asym:mean:fpin:gain0.25,w4a:8:exact:c64:mean:fpin:gain0.5,fp}
sweep() {  # name configs
  timeout $(python3 -c "print(int($FID_MIN * 60 + 90))") python3 -m experiments.sweep --device "$DEVICE" --sample-batch 2500 \
    --threads 4 --no-grid --no-ablation --fid-n "$FID_N" --fid-steps "$FID_STEPS" --fid-seeds 1-3 \
    --profile assets/default/profile_rtn.safetensors --profiles "$PROFILES" --fid-configs "$2" --name "$1" \
    --cache "$CACHE" --max-minutes "$FID_MIN" --out "$WORK/$1.json" > "$OUT/$1.log" 2>&1
  echo "== $1 exit $?"
  cp "$WORK/$1.json" "$OUT/"  # not its plots: few files come back
  tr '\r' '\n' < "$OUT/$1.log" | grep -a "FID (" | tail -60
}

echo "== CUDA tests"
timeout 150 python3 -m pytest -q -s -p no:cacheprovider tests/test_cuda.py > "$OUT/test_cuda.log" 2>&1
echo "== test_cuda exit $?"; tail -12 "$OUT/test_cuda.log"

echo "== CIFAR-10 DDPM profile"
timeout "$CIFAR_S" python3 -m benchmarks.profile_cifar10 --device "$DEVICE" --threads 8 --recipes rtn \
  --out "$OUT/profile_cifar10_cuda.json" 2>&1 | tr '\r' '\n' | grep -a "^rtn:\|Error\|error"
echo "== profile_cifar10 exit ${PIPESTATUS[0]}"

echo "== FIDs"
sweep sweep_gpu_5k "$SWEEP_A" & a=$!
sleep 20  # B's FP row comes last: A computes it first
sweep sweep_gpu_5k_variants "$SWEEP_B" & b=$!
wait $a $b
cp "$CACHE" "$OUT/"
date
cat "$OUT/run.log" >&3
