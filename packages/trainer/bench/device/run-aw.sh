#!/bin/bash
# Device run AW (round 10): the MLP GEMMs in clusters of two blocks sharing B by TMA multicast, the
# workers' loads batched. Their check (float64, cuBLAS + activation kernels, times); the fixture
# step with them; the step at 256 alternating cuBLAS and the fused GEMMs twice. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
mkdir -p /tmp/fx && tar -xJf tiny.tar.xz -C /tmp/fx
quiet() { grep -v '^{"gemm_tuning"'; }
FX=/tmp/fx/tiny-vit-p8
el mlpgemm; timeout 150 $N main.mjs mlpgemm 256 2>&1
el parity; UNMASK_MLP_GEMM=fused timeout 150 $N main.mjs parity $FX 2>&1 | grep -v '"check":"attention'
el abtest; timeout 240 $N main.mjs abtest 256 2 - UNMASK_MLP_GEMM=fused 2>&1 | quiet
el done
