#!/bin/bash
# Device run AC (round 7, final figures): this round's kernels (16-key last chunk in the forward
# attention, head_step's independent chains, mask_update's 16-byte accesses) against round 6's
# (.gpu/old.fatbin.xz, commit 4bc66ba). Attention check + fixture parity, tunecheck, the state after
# 4 steps at 32 against round 6's fatbin, the step at 256 alternated three times with it, bench 32
# and 256, the eager profile, PyTorch side by side, then the end-to-end train() at batch 256 as
# the budget allows. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
xz -dc run/e2e.mjs.xz > run/e2e.mjs && xz -dc old.fatbin.xz > /tmp/old.fatbin
quiet() { grep -v '^{"gemm_tuning"'; }
OLD=UNMASK_CUDA_FATBIN=/tmp/old.fatbin
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el tunecheck; timeout 90 $N main.mjs tunecheck 32 4 2>&1 | quiet | tee $OUT/tunecheck.log
el samebits; timeout 90 $N main.mjs samebits 32 4 $OLD - 2>&1 | quiet | tee $OUT/samebits.log
el abtest; timeout 200 $N main.mjs abtest 256 3 $OLD - 2>&1 | quiet | tee $OUT/abtest.log
el bench; timeout 90 $N main.mjs bench 32 256 2>&1 | quiet | tee $OUT/bench.log
el profile; timeout 90 $N main.mjs profile 256 2>&1 | quiet > $OUT/profile.log
el torch; timeout 150 python3 torch_rmt_bench.py compiled:256 compiled:32 2>&1 | grep -v Warning | tee $OUT/torch.log
left=$(( 560 - ($(date +%s) - T0) ))
el "e2e (budget ${left}s)"
if [ $left -gt 200 ]; then
  export UV_THREADPOOL_SIZE=$(nproc)
  mkdir -p /tmp/e2e; $N run/e2e.mjs model /tmp/vitb16
  $N run/e2e.mjs images /tmp/imgs 1000 16 224 1000 2>&1 | tee $OUT/images.log
  timeout $(( left - 60 )) $N run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1 | tee $OUT/e2e256.log
fi
el done
