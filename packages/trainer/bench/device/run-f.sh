#!/bin/bash
# Device run F (round 4, last): attention check + fixture parity (the shared dkdv_step), the step at
# batch 32 and 256, then the end-to-end train() at --batch-size 256 on a generated 16,000-image,
# 1000-class folder (threaded text tower, one-call JPEG decoding overlapping the model load,
# background checkpoints). Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
el parity; timeout 100 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
field() { grep -o "\"$1\":[0-9.e+-]*" $OUT/parity.log | cut -d: -f2 | sort -g | tail -1; }
if [ "$(field fused_vs_split_dkdv_differing)" != "0" ]; then echo "FALLBACK: fused backward differs"; export UNMASK_ATTN_BWD=split; fi
el bench; timeout 60 $N main.mjs bench 32 256 2>&1 | tee $OUT/bench.log
# as bin/unmask.js does before anything starts libuv's pool: one decode thread per core
export UV_THREADPOOL_SIZE=$(nproc)
mkdir -p /tmp/e2e; el model; $N run/e2e.mjs model /tmp/vitb16
el images; $N run/e2e.mjs images /tmp/imgs 1000 16 224 2>&1 | tee $OUT/images.log
el e2e256; timeout 150 $N run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1 | tee $OUT/e2e256.log
el done
