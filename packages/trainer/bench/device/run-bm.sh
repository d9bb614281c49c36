#!/bin/bash
# Device run BM (round 11): on run BL's machine (still held), the step at 32 and 256 and PyTorch
# torch.compile side by side. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
el bench; timeout 90 $N main.mjs bench 32 256 256 2>&1 | quiet
el torch; timeout 150 python3 torch_rmt_bench.py compiled:256 2>&1 | grep -v Warning
el done
