#!/bin/bash
# Device run BR (round 12, on nvidia-h200-x2): the data-parallel path in fp16, the default now.
# dpcheck (a world of 2 against one GPU on the same global batch: replica digests, reduced
# gradients, losses, scores; every rank's loss scale comes from the shared maxBatch) and dpbench
# (ViT-B/16 at 256 images a GPU on 1 and 2 GPUs). Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_NCCL=1 source packages/trainer/bench/device/device-env.sh
nvidia-smi -L
el dpcheck; timeout 150 $N main.mjs dpcheck 2 2>$OUT/dpcheck.err | tee $OUT/dpcheck.log; tail -5 $OUT/dpcheck.err
el dpbench; timeout 200 $N main.mjs dpbench 2 256 20 2>$OUT/dpbench.err | tee $OUT/dpbench.log; tail -5 $OUT/dpbench.err
el done
