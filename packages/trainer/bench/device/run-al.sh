#!/bin/bash
# Device run AL (issue 9, nvidia-h200-x2): dpcheck with the scores' differences, dpbench again,
# then train() on 1 and on 2 GPUs where bits do switch: nano-clip on the demo's Fashion-MNIST
# folder (16-shot list seed 1, 30 epochs, batch 32, the recipe's lr: the demo's run) and the random
# ViT-B/16 on 100 x 16 noise images at lr 1e-3 (3 epochs, batch 64); the final masks compared bit
# by bit. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_NCCL=1 source packages/trainer/bench/device/device-env.sh
DEMO=../packages/cli/assets/demo
el dpcheck; timeout 150 $N main.mjs dpcheck 2 2>$OUT/dpcheck.err | tee $OUT/dpcheck.log
el dpbench; timeout 200 $N main.mjs dpbench 2 256 20 2>$OUT/dpbench.err | tee $OUT/dpbench.log
el nano; $N run/e2e.mjs convert $DEMO/nano-clip.jit.pt /tmp/nano | tee $OUT/convert.log
for g in 1 2; do
  el "nano $g"; timeout 150 $N run/e2e.mjs traingpus /tmp/nano $DEMO/fashion-mnist 30 32 /tmp/n$g.umask $g - $DEMO/fashion-mnist/fewshot-16-seed1.json > $OUT/nano$g.out 2>&1; tail -3 $OUT/nano$g.out
done
$N run/e2e.mjs maskdiff /tmp/n1.umask /tmp/n2.umask 2>&1 | tee $OUT/maskdiff-nano.log
el vitb16; $N run/e2e.mjs model /tmp/vitb16 > /dev/null && $N run/e2e.mjs images /tmp/imgs 100 16 224 > /dev/null
for g in 1 2; do
  el "vitb16 $g"; timeout 150 $N run/e2e.mjs traingpus /tmp/vitb16 /tmp/imgs 3 64 /tmp/v$g.umask $g 1e-3 > $OUT/vitb16-$g.out 2>&1; tail -3 $OUT/vitb16-$g.out
done
$N run/e2e.mjs maskdiff /tmp/v1.umask /tmp/v2.umask 2>&1 | tee $OUT/maskdiff-vitb16.log
el done
