#!/bin/bash
# Device run K (round 5): the attention backward takes both signals in one block per (image,
# head) (q, k, v, o loaded once; the next dO during this dq pass), the in_proj weight gradients of
# both signals in one batched GEMM and their input gradients in one. Attention check + fixture
# parity, the tuning bit check, the step at 256 twice, the profile. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el tunecheck; timeout 120 $N main.mjs tunecheck 32 4 2>&1 | tee $OUT/tunecheck.log
for k in 1 2; do el "bench $k"; timeout 90 $N main.mjs bench 256 2>&1 | grep -v gemm_tuning | tee -a $OUT/bench.log; done
el profile; timeout 120 $N main.mjs profile 32 256 2>&1 | tee $OUT/profile.log
el done
