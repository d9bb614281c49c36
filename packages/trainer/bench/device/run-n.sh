#!/bin/bash
# Device run N (round 5): decoding alone (e2e.mjs decode: buildImageCache of 4,000 224 px JPEGs)
# with libuv pools of 1 to 16 threads and with glibc's malloc arenas capped, with user / system CPU,
# to find what bounds the image cache on this machine (run M: 16,000 in 24.6 s, run G 15.7 s).
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
nproc
el images; $N run/e2e.mjs images /tmp/imgs 250 16 224 1000
for p in 1 2 4 8 16; do el "pool $p"; UV_THREADPOOL_SIZE=$p timeout 60 $N run/e2e.mjs decode /tmp/imgs 4000 2>&1 | tee -a $OUT/decode.log; done
el "pool 16 arenas 2"; MALLOC_ARENA_MAX=2 UV_THREADPOOL_SIZE=16 timeout 60 $N run/e2e.mjs decode /tmp/imgs 4000 2>&1 | tee -a $OUT/decode.log
el "pool 4 arenas 2"; MALLOC_ARENA_MAX=2 UV_THREADPOOL_SIZE=4 timeout 60 $N run/e2e.mjs decode /tmp/imgs 4000 2>&1 | tee -a $OUT/decode.log
el "pool 16 threads 4"; UV_THREADPOOL_SIZE=16 timeout 60 $N run/e2e.mjs decode /tmp/imgs 4000 4 2>&1 | tee -a $OUT/decode.log
el done
