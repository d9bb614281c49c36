#!/bin/bash
# Device run BN (round 12): the fp16 build (kernels built with -DUNMASK_FP16, precision "fp16",
# loss scale the power of two at or above the batch). The fixture against float64 in bf16 (must
# repeat round 11's figures) and fp16; the 20-step comparison with the cpu engine in fp16; the
# Fashion-MNIST full runs in fp16 (micro-clip and nano-clip, 3 seeds, 30 epochs; masks back);
# the step at 32 and 256 in both precisions. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
mkdir -p /tmp/fx && tar -xJf tiny.tar.xz -C /tmp/fx
xz -dc fashion.bin.xz > /tmp/fashion.bin && tar -xJf mcs.tar.xz -C /tmp
el parity-bf16; timeout 60 $N main.mjs parity /tmp/fx/tiny-vit-p8 2>&1
el parity-fp16; UNMASK_PRECISION=fp16 timeout 60 $N main.mjs parity /tmp/fx/tiny-vit-p8 2>&1
el cpuparity-fp16; UNMASK_PRECISION=fp16 timeout 120 $N main.mjs cpuparity /tmp/fx/tiny-vit-p8 20 2>&1 | tail -5
el micro-fp16; UNMASK_PRECISION=fp16 timeout 150 $N run/full.mjs cuda /tmp/mcs /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
el nano-fp16; UNMASK_PRECISION=fp16 timeout 150 $N run/full.mjs cuda ../packages/cli/assets/demo/nano-clip.jit.pt /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
cp /tmp/fr/*.mask $OUT/
el bench-fp16; UNMASK_PRECISION=fp16 timeout 90 $N main.mjs bench 32 256 256 2>&1 | quiet
el bench-bf16; timeout 90 $N main.mjs bench 32 256 256 2>&1 | quiet
el done
