#!/bin/bash
# Device run V (round 6): the weight-gradient GEMMs as written and transposed (main.mjs gemmlayouts),
# at batch 256 and 32. Logs under $OUT.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
el layouts; timeout 60 $N main.mjs gemmlayouts 256 2>&1 | tee $OUT/layouts.log
timeout 60 $N main.mjs gemmlayouts 32 2>&1 | tee -a $OUT/layouts.log
el done
