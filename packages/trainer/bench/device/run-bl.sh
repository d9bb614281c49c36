#!/bin/bash
# Device run BL (round 11): the end-to-end train() at --batch-size 256 with this round's kernels
# (a random ViT-B/16 directory and 16,000 224 px JPEGs of 1,000 classes generated on the device,
# then train() as `unmask train --device cuda` calls it, with the time split). One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
xz -dc run/e2e.mjs.xz > run/e2e.mjs  # carried as xz (the upload limit)
export UV_THREADPOOL_SIZE=$(nproc)
mkdir -p /tmp/e2e; el model; $N run/e2e.mjs model /tmp/vitb16
el images; $N run/e2e.mjs images /tmp/imgs 1000 16 224 1000 2>&1
el e2e256; timeout 150 $N run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1
el done
