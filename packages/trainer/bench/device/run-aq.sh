#!/bin/bash
# Device run AQ (round 9): why the eager profile (sum of per-launch event times) came out 3.4-5 ms
# below the graph replay in runs AO and AP, when round 8 had them equal. The eager profile and the
# graph at 256 with epilogues off and on, twice each, with nvidia-smi dmon (power, clocks) logging
# every second. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv,noheader
nvidia-smi dmon -s pc -d 1 -o T > /tmp/dmon.log 2>&1 &
DMON=$!
for round in 1 2; do
  for v in UNMASK_GEMM_EPILOGUES=none UNMASK_GEMM_EPILOGUES=qkv,attn,mlp; do
    el "$v round $round $(date +%T)"; env $v timeout 90 $N main.mjs profile 256 2>&1 | grep -v '^{"gemm_tuning"' | grep -v '^  ' 
  done
done
kill $DMON
cat /tmp/dmon.log
el done
