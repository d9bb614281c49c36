#!/bin/bash
# Device run AR (round 9, final figures): bench 32 and 256 with the GEMM epilogues (the default),
# PyTorch side by side, the end-to-end train() on the 1000-class, 16-shot, 224 px folder at batch
# 256, with nvidia-smi dmon (power, SM clock) logging every second throughout. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv,noheader
nvidia-smi dmon -s pc -d 1 -o T > /tmp/dmon.log 2>&1 &
DMON=$!
el "bench $(date +%T)"; timeout 90 $N main.mjs bench 32 256 2>&1 | quiet
el "torch $(date +%T)"; timeout 180 python3 torch_rmt_bench.py compiled:256 compiled:32 2>&1 | grep -v Warning
export UV_THREADPOOL_SIZE=$(nproc)
mkdir -p /tmp/e2e
el "e2e model $(date +%T)"; $N run/e2e.mjs model /tmp/vitb16
el "e2e images $(date +%T)"; $N run/e2e.mjs images /tmp/imgs 1000 16 224 1000 2>&1 | tail -n 3
el "e2e train $(date +%T)"; timeout 200 $N run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1
kill $DMON
awk 'NR <= 2 || $3 > 300' /tmp/dmon.log
el "done $(date +%T)"
