#!/bin/bash
# Device run AP (round 9): GEMM tuning of the epilogue calls (run AO's profile: in_proj + bias at
# 654 TF/s, c_proj into the stream at 706, out_proj into the stream at 397). tunecheck (tuning
# keeps every bit, now with the accumulating calls' C put back); the step at 256 alternating none /
# qkv / qkv,mlp / all three times; the eager profile with the tuning table. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el tunecheck; timeout 90 $N main.mjs tunecheck 32 4 2>&1 | quiet
el abtest; timeout 300 $N main.mjs abtest 256 3 UNMASK_GEMM_EPILOGUES=none UNMASK_GEMM_EPILOGUES=qkv UNMASK_GEMM_EPILOGUES=qkv,mlp - 2>&1 | quiet
el profile; timeout 90 $N main.mjs profile 256 2>&1
el done
