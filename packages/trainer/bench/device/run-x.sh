#!/bin/bash
# Device run X (round 6): the weight-gradient GEMMs (as written, transposed) beside in_proj's
# input-gradient GEMM (NN, same FLOPs), on constant and on random operands. Logs under $OUT.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
el constant; timeout 60 $N main.mjs gemmlayouts 256 2>&1 | tee $OUT/layouts.log
el random; timeout 90 $N main.mjs gemmlayouts 256 random 2>&1 | tee -a $OUT/layouts.log
el done
