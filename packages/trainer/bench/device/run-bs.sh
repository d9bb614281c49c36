#!/bin/bash
# Device run BS (round 12, on nvidia-h200-x2): run BR's dpcheck reported rank 0's first-step
# gradients 1.25 (norm) from one GPU's in fp16 while the final scores agreed better than bf16's:
# dpcheck again in both precisions, with the error per tensor and loss. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_NCCL=1 source packages/trainer/bench/device/device-env.sh
for p in fp16 bf16; do
  el "dpcheck $p"; UNMASK_PRECISION=$p timeout 150 $N main.mjs dpcheck 2 2>$OUT/dpcheck-$p.err | tee $OUT/dpcheck-$p.log; tail -3 $OUT/dpcheck-$p.err
done
el done
