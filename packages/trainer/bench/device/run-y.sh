#!/bin/bash
# Device run Y (round 7): the weight gradients on a side stream. Attention check + fixture parity
# (default: UNMASK_SIDE_STREAM=1), sidecheck (the state after 4 steps at 32 with the side stream
# off, on, and with the updates there too: 0 bits may differ), the step at 256 alternated twice
# over five variants (side stream off / on / with updates, each with a high-priority main stream),
# then the weight-gradient layouts on random operands with X feature-major. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el sidecheck; timeout 120 $N main.mjs sidecheck 32 4 2>&1 | quiet | tee $OUT/sidecheck.log
el abtest; timeout 330 $N main.mjs abtest 256 2 UNMASK_SIDE_STREAM=0 - UNMASK_SIDE_STREAM=2 \
  UNMASK_STREAM_PRIORITY=high UNMASK_SIDE_STREAM=2,UNMASK_STREAM_PRIORITY=high 2>&1 | quiet | tee $OUT/abtest.log
el gemmlayouts; timeout 60 $N main.mjs gemmlayouts 256 random 2>&1 | tee $OUT/layouts.log
el done
