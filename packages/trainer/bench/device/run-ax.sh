#!/bin/bash
# Device run AX (round 10): the MLP GEMM variants side by side (c1: one block, c2: clusters of two sharing B by multicast; w1: one K step of MMAs left in flight, w0: none). Then as AW: the
# workers' loads batched. Their check (float64, cuBLAS + activation kernels, times); the fixture
# step with them; the step at 256 alternating cuBLAS and the fused GEMMs twice. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
mkdir -p /tmp/fx && tar -xJf tiny.tar.xz -C /tmp/fx
quiet() { grep -v '^{"gemm_tuning"'; }
FX=/tmp/fx/tiny-vit-p8
el mlpgemm; timeout 150 $N main.mjs mlpgemm 256 2>&1


el done
