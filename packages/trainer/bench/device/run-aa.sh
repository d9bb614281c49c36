#!/bin/bash
# Device run AA (round 7): the forward attention's last chunk of at most 16 keys computed as 16
# (not 32), head_step's projections with independent chains (both bit-identical by construction).
# Attention check + fixture parity, the state after 4 steps at 32 against the previous commit's
# fatbin (.gpu/old.fatbin: 0 bits may differ), the step at 256 alternated three times with it,
# then the eager profile. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
OLD=UNMASK_CUDA_FATBIN=$PWD/old.fatbin
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el samebits; timeout 90 $N main.mjs samebits 32 4 $OLD - 2>&1 | quiet | tee $OUT/samebits.log
el abtest; timeout 200 $N main.mjs abtest 256 3 $OLD - 2>&1 | quiet | tee $OUT/abtest.log
el profile; timeout 90 $N main.mjs profile 256 2>&1 | quiet > $OUT/profile.log
el done
