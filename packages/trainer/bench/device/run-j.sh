#!/bin/bash
# Device run J (round 5): GEMM tuning (gemm-tuning.ts: cuBLASLt candidates taken only when their
# output has cublasGemmEx's bits and they are >= 2% faster). The bit check over whole steps
# (tunecheck: state after 4 steps at batch 32 with and without tuning), the step at 256 with
# tuning (per-shape table) and without, alternating, then the profile with tuning. Logs under $OUT.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
el tunecheck; timeout 120 $N main.mjs tunecheck 32 4 2>&1 | tee $OUT/tunecheck.log
for k in 1 2; do
  el "bench tuned $k"; timeout 90 $N main.mjs bench 256 2>&1 | tee -a $OUT/bench-tuned.log
  el "bench untuned $k"; UNMASK_GEMM_TUNE=0 timeout 60 $N main.mjs bench 256 2>&1 | tee -a $OUT/bench-untuned.log
done
el profile; timeout 120 $N main.mjs profile 256 2>&1 | tee $OUT/profile.log
el done
