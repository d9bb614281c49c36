#!/bin/bash
# Device run BT (round 12, on nvidia-h200-x2): run BS found the fp16 dpcheck's KL gradients 0.37-1.25
# (norm) from one GPU's, its cross-entropy ones 4e-4-8e-4: with every weight kept the student is
# the teacher and the KL gradient is rounding noise. dpcheck now starts with an eighth of the
# weights masked off, in both precisions. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_NCCL=1 source packages/trainer/bench/device/device-env.sh
for p in fp16 bf16; do
  el "dpcheck $p"; UNMASK_PRECISION=$p timeout 150 $N main.mjs dpcheck 2 2>$OUT/dpcheck-$p.err | tee $OUT/dpcheck-$p.log; tail -3 $OUT/dpcheck-$p.err
done
el done
