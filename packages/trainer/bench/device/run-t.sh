#!/bin/bash
# Device run T (round 6, final figures): the final code (no weight-gradient chunks: run S measured
# them no faster). Attention check + fixture parity, tunecheck, the step at 32 and 256 (twice at
# 256), the eager profile, the end-to-end train() at --batch-size 256, then PyTorch side by side.
# Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
xz -dc run/e2e.mjs.xz > run/e2e.mjs  # carried as xz (the upload limit)
quiet() { grep -v '^{"gemm_tuning"'; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el tunecheck; timeout 90 $N main.mjs tunecheck 32 4 2>&1 | quiet | tee $OUT/tunecheck.log
el bench; timeout 90 $N main.mjs bench 32 256 2>&1 | tee $OUT/bench.log | quiet
el "bench 256 again"; timeout 60 $N main.mjs bench 256 2>&1 | quiet | tee -a $OUT/bench.log
el profile; timeout 90 $N main.mjs profile 256 2>&1 | quiet > $OUT/profile.log
export UV_THREADPOOL_SIZE=$(nproc)
mkdir -p /tmp/e2e; el model; $N run/e2e.mjs model /tmp/vitb16
el images; $N run/e2e.mjs images /tmp/imgs 1000 16 224 1000 2>&1 | tee $OUT/images.log
el e2e256; timeout 110 $N run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1 | tee $OUT/e2e256.log
left=$(( 585 - ($(date +%s) - T0) ))
el "torch (budget ${left}s)"; [ $left -gt 40 ] && timeout $left python3 torch_rmt_bench.py compiled:256 compiled:32 2>&1 | grep -v Warning | tee $OUT/torch.log
el done
