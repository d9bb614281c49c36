#!/bin/bash
# Device run F (round 4): the end-to-end train() at --batch-size 256 on a generated 16,000-image,
# 1000-class folder (after the faster decoding and text features), then batch 32 as time allows.
cd "$(dirname "$0")/.."
T0=$(date +%s); el() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node && tar -xJf .gpu/sharp.tar.xz -C .gpu
cd .gpu && export UNMASK_CUDA_FATBIN=$PWD/../packages/trainer/kernels/unmask.fatbin
# as bin/unmask.js does before anything starts libuv's pool: one decode thread per core
export UV_THREADPOOL_SIZE=$(nproc)
mkdir -p /tmp/e2e; el model; /tmp/node run/e2e.mjs model /tmp/vitb16
el images; /tmp/node run/e2e.mjs images /tmp/imgs 1000 16 224 2>&1 | tee $OUT/images.log
el e2e256; timeout 150 /tmp/node run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1 | tee $OUT/e2e256.log
left=$(( 570 - ($(date +%s) - T0) ))
el "e2e32 (budget ${left}s)"; [ $left -gt 100 ] && timeout $left /tmp/node run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 - /tmp/e2e/out32.umask cuda 2>&1 | tee $OUT/e2e32.log
el done
