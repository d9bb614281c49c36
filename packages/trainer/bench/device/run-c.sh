#!/bin/bash
# Device run C (round 3): the end-to-end train() at --batch-size 256 on the generated folder.
cd "$(dirname "$0")/.."
T0=$(date +%s); el() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node && tar -xJf .gpu/sharp.tar.xz -C .gpu
cd .gpu && export UNMASK_CUDA_FATBIN=$PWD/../packages/trainer/kernels/unmask.fatbin
mkdir -p /tmp/e2e; el model; /tmp/node run/e2e.mjs model /tmp/vitb16
el images; /tmp/node run/e2e.mjs images /tmp/imgs 1000 16 224 2>&1 | tee $OUT/images.log
el e2e256; timeout 175 /tmp/node run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1 | tee $OUT/e2e256.log
el done
