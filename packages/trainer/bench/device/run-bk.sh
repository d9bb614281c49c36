#!/bin/bash
# Device run BK (round 11): the eager profile at batch 256 with both MLP GEMMs fused (where the
# step's time goes now), and the 20-step comparison with the cpu engine on the fixture. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
mkdir -p /tmp/fx && tar -xJf tiny.tar.xz -C /tmp/fx
el profile; timeout 120 $N main.mjs profile 256 2>&1 | grep -v '^{"gemm_tuning"'
el cpuparity; timeout 150 $N main.mjs cpuparity /tmp/fx/tiny-vit-p8 20 2>&1 | tail -5
el done
