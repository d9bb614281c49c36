#!/bin/bash
# Device run BP (round 12): fp16 (the default) and bf16 alternating in one process, three rounds
# at batch 256; the eager profile at 256 in fp16; the fp16 full runs again with the learning rate
# scaled by 1.001 and 0.999 (round 8's test of how far a run moves with its trajectory), nano-clip
# and micro-clip, 3 seeds, 30 epochs, masks back. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
xz -dc fashion.bin.xz > /tmp/fashion.bin && tar -xJf mcs.tar.xz -C /tmp
el abtest; timeout 200 $N main.mjs abtest 256 3 - UNMASK_PRECISION=bf16 2>&1 | quiet
el profile-fp16; timeout 120 $N main.mjs profile 256 2>&1 | quiet | head -60
for lr in 1.001 0.999; do
  el "micro-fp16 lr x $lr"; FULL_LR_SCALE=$lr timeout 150 $N run/full.mjs cuda /tmp/mcs /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
  el "nano-fp16 lr x $lr"; FULL_LR_SCALE=$lr timeout 150 $N run/full.mjs cuda ../packages/cli/assets/demo/nano-clip.jit.pt /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
done
cp /tmp/fr/*.mask $OUT/
el done
