#!/bin/bash
# Device run BG (round 11, final figures): the fixture step, the check, bench 32 and 256, the step
# at 256 against UNMASK_MLP_GEMM=forward once, PyTorch torch.compile side by side. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
mkdir -p /tmp/fx && tar -xJf tiny.tar.xz -C /tmp/fx
quiet() { grep -v '^{"gemm_tuning"'; }
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv,noheader
el parity; timeout 100 $N main.mjs parity /tmp/fx/tiny-vit-p8 2>&1 | grep -v '"check":"attention'
el mlpgemm; timeout 100 $N main.mjs mlpgemm 256 2>&1
el bench; timeout 90 $N main.mjs bench 32 256 2>&1 | quiet
el abtest; timeout 120 $N main.mjs abtest 256 1 - UNMASK_MLP_GEMM=forward 2>&1 | quiet
el torch; timeout 220 python3 torch_rmt_bench.py compiled:256 compiled:32 2>&1 | grep -v Warning
el done
