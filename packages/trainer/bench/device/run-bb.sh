#!/bin/bash
# Device run BB (round 10): the MLP GEMMs with quiet waits (the worker warps and the consumers'
# wait for the staged tile poll with a pause instead of spinning) and no accumulator zeroing (the
# first MMA of a tile overwrites), beside the kernels of run AX. The check and times alone.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
el mlpgemm; timeout 150 $N main.mjs mlpgemm 256 2>&1
el done
