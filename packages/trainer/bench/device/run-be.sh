#!/bin/bash
# Device run BE (round 10): c_fc fused (QuickGELU through tanh.approx in the workers), the backward
# on cuBLAS + gelu_bwd reading the kept x with a zero bias. The check; the fixture step with it;
# the step at 256 against the default twice; then, with it, the Fashion-MNIST full runs (micro-clip
# and nano-clip, 3 seeds, 30 epochs). One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
mkdir -p /tmp/fx && tar -xJf tiny.tar.xz -C /tmp/fx
xz -dc fashion.bin.xz > /tmp/fashion.bin && tar -xJf mcs.tar.xz -C /tmp
quiet() { grep -v '^{"gemm_tuning"'; }
el mlpgemm; timeout 100 $N main.mjs mlpgemm 256 2>&1
el parity; UNMASK_MLP_GEMM=fused timeout 100 $N main.mjs parity /tmp/fx/tiny-vit-p8 2>&1 | grep -v '"check":"attention'
el abtest; timeout 150 $N main.mjs abtest 256 2 - UNMASK_MLP_GEMM=fused 2>&1 | quiet
export UNMASK_MLP_GEMM=fused
el micro; timeout 100 $N run/full.mjs cuda /tmp/mcs /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
el nano; timeout 100 $N run/full.mjs cuda ../packages/cli/assets/demo/nano-clip.jit.pt /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
cp /tmp/fr/*.mask $OUT/
el done
