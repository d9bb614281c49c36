#!/bin/bash
# Device run G (round 4): the end-to-end train() at --batch-size 256 once more after the event-loop
# fix for background checkpoint writes (one turn a step) and grouped writev; the folder's 16,000
# JPEGs are copies of 1,000 encoded ones, to fit the session's device time. Logs under $OUT.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
export UV_THREADPOOL_SIZE=$(nproc)
mkdir -p /tmp/e2e; el model; /tmp/node run/e2e.mjs model /tmp/vitb16
el images; /tmp/node run/e2e.mjs images /tmp/imgs 1000 16 224 1000 2>&1 | tee $OUT/images.log
el e2e256; timeout 105 /tmp/node run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1 | tee $OUT/e2e256.log
el done
