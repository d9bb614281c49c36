#!/bin/bash
# Device run BQ (round 12): the default step (fp16) at 256 in four processes one after another on
# a fresh machine, each with its GEMM tuning table (which algorithm each shape took): how much of
# the call-to-call spread the tuning's choices explain. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
for i in 1 2 3 4; do
  el "bench $i"; timeout 90 $N main.mjs bench 256 2>&1
done
el done
