#!/bin/bash
# Device run AZ (round 10): the MLP GEMMs with a 32-wide K step in the 64-byte swizzle (6 stages) beside the 64-wide one (3 stages),
# the workers batching 12 loads and prefetching the next tile's x into L2. The check, the fixture step, then the step at 256:
# cuBLAS against the fused GEMMs twice. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
mkdir -p /tmp/fx && tar -xJf tiny.tar.xz -C /tmp/fx
quiet() { grep -v '^{"gemm_tuning"'; }
FX=/tmp/fx/tiny-vit-p8
el mlpgemm; timeout 150 $N main.mjs mlpgemm 256 2>&1
el parity; UNMASK_MLP_GEMM=fused timeout 150 $N main.mjs parity $FX 2>&1 | grep -v '"check":"attention'
el abtest; timeout 240 $N main.mjs abtest 256 2 - UNMASK_MLP_GEMM=fused 2>&1 | quiet
el done
