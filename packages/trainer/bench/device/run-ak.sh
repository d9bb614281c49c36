#!/bin/bash
# Device run AK (issue 9, on nvidia-h200-x2): data-parallel training on 2 GPUs through NCCL (pip's
# nvidia-nccl-cu13 there). dpcheck (a world of 2 against one GPU on the same global batch:
# replica digests, reduced gradients, losses, scores), dpbench (ViT-B/16 at 256 images a GPU on 1
# and 2 GPUs: scaling efficiency), then train() end to end on 1 and on 2 GPUs with the same global
# batch and seed (a random ViT-B/16, 100 classes x 16 shots at 224 px, 3 epochs at batch 64) and
# the final masks compared bit by bit. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_NCCL=1 source packages/trainer/bench/device/device-env.sh
nvidia-smi -L; echo "NCCL: $UNMASK_NCCL_LIBRARY"; ls -la "$UNMASK_NCCL_LIBRARY"
el dpcheck; timeout 150 $N main.mjs dpcheck 2 2>$OUT/dpcheck.err | tee $OUT/dpcheck.log; tail -5 $OUT/dpcheck.err
el dpbench; timeout 200 $N main.mjs dpbench 2 256 20 2>$OUT/dpbench.err | tee $OUT/dpbench.log; tail -5 $OUT/dpbench.err
el e2e; mkdir -p /tmp/e2e; $N run/e2e.mjs model /tmp/vitb16 && $N run/e2e.mjs images /tmp/imgs 100 16 224 2>&1 | tee $OUT/images.log
for g in 1 2; do
  el "train $g"; timeout 150 $N run/e2e.mjs traingpus /tmp/vitb16 /tmp/imgs 3 64 /tmp/e2e/g$g.umask $g 2>&1 | tail -8 | tee $OUT/train$g.log
done
$N run/e2e.mjs maskdiff /tmp/e2e/g1.umask /tmp/e2e/g2.umask 2>&1 | tee $OUT/maskdiff.log
el done
