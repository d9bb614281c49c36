#!/bin/bash
# Device run O (round 5): image workers decoding the files into a shared cache (image-pool.ts of
# commit "image cache: image workers decode files...", reverted after this run: no faster). The
# image cache alone, 4,000 JPEGs, files on the calling thread vs on the workers (libuv pool 16, as
# bin/unmask.js sets it), then the end-to-end train() at --batch-size 256. Logs under $OUT.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
export UV_THREADPOOL_SIZE=$(nproc) UNMASK_CLIP_ENTRY=$PWD/run/clip.mjs
mkdir -p /tmp/e2e; el model; $N run/e2e.mjs model /tmp/vitb16
el images; $N run/e2e.mjs images /tmp/imgs 1000 16 224 1000 2>&1 | tee $OUT/images.log
for k in 1 2; do
  el "decode main $k"; timeout 60 $N run/e2e.mjs decode /tmp/imgs 4000 - main 2>&1 | tee -a $OUT/decode.log
  el "decode workers $k"; timeout 60 $N run/e2e.mjs decode /tmp/imgs 4000 2>&1 | tee -a $OUT/decode.log
done
el e2e256; timeout 110 $N run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1 | tee $OUT/e2e256.log
el done
