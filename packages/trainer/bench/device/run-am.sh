#!/bin/bash
# Device run AM (issue 9, nvidia-h200-x2): the NCCL gradient reducer's exact weighted all-reduce
# (dpreduce), then train() on 1 and on 2 GPUs with the same global batch and seed where bits do
# switch: nano-clip (the demo's .pt, converted here) and micro-clip (.gpu/mcs.tar.xz, prep-micro.mjs's
# directory) on the demo's Fashion-MNIST folder with the reference 16-shot lists of seeds 1-3,
# 30 epochs, batch 32, the recipe's lr (the demo's run); final masks compared bit by bit.
cd "$(dirname "$0")/.."
DEVICE_NCCL=1 source packages/trainer/bench/device/device-env.sh
DEMO=../packages/cli/assets/demo
el dpreduce; timeout 100 $N main.mjs dpreduce 2 2>$OUT/dpreduce.err | tee $OUT/dpreduce.log
$N run/e2e.mjs convert $DEMO/nano-clip.jit.pt /tmp/nano-clip > /dev/null; tar -xJf mcs.tar.xz -C /tmp && mv /tmp/mcs /tmp/micro-clip
for m in nano-clip micro-clip; do
  for s in 1 2 3; do
    for g in 1 2; do
      el "$m seed $s, $g GPUs"
      timeout 120 $N run/e2e.mjs traingpus /tmp/$m $DEMO/fashion-mnist 30 32 /tmp/$m-s$s-g$g.umask $g - $DEMO/fashion-mnist/fewshot-16-seed$s.json > /tmp/$m-s$s-g$g.out 2>&1
      grep '"run"' /tmp/$m-s$s-g$g.out | tee -a $OUT/train.log || tail -5 /tmp/$m-s$s-g$g.out
    done
    $N run/e2e.mjs maskdiff /tmp/$m-s$s-g1.umask /tmp/$m-s$s-g2.umask 2>&1 | tee -a $OUT/maskdiff.log
  done
done
el done
