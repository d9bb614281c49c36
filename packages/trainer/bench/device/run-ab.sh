#!/bin/bash
# Device run AB (round 7): every cuBLASLt candidate for the weight-gradient GEMMs (time, and whether
# it gives cublasGemmEx's bits), then PyTorch's fused attention on the step's shape per SDPA
# backend, for comparison with the engine's attention kernels. Logs under $OUT.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el gemmlayouts; timeout 120 $N main.mjs gemmlayouts 256 random 2>&1 | tee $OUT/layouts.log
el sdpa; timeout 120 python3 ../packages/trainer/bench/device/sdpa_bench.py 2>&1 | grep -v Warning | tee $OUT/sdpa.log
el done
