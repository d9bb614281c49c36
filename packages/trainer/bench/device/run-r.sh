#!/bin/bash
# Device run R (round 6): the last block's query GEMM on the class rows alone, long weight-gradient
# sums in chunks of whole images (UNMASK_DW_CHUNKS 1 / 2 / 4 / 8 side by side), QuickGELU's sigmoid
# by __fdividef (A/B against the same code with the IEEE division: .gpu/exact-gelu.fatbin), the
# previous commit's bundle (.gpu/old), tunecheck and the eager profile.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
OLD=$PWD/old
# carried as xz (the upload limit): the A/B fatbins, the previous bundle, the end-to-end script
for f in exact-gelu.fatbin old/old.fatbin old/main.mjs run/e2e.mjs; do xz -dc $f.xz > $f; done
b() { timeout 60 "$@" 2>&1 | grep -v gemm_tuning; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el tunecheck; timeout 90 $N main.mjs tunecheck 32 4 2>&1 | grep -v gemm_tuning | tee $OUT/tunecheck.log
for k in 1 2; do
  el "bench new $k"; b $N main.mjs bench 256 | tee -a $OUT/bench-new.log
  el "bench exact-gelu $k"; UNMASK_CUDA_FATBIN=$PWD/exact-gelu.fatbin b $N main.mjs bench 256 | tee -a $OUT/bench-exact.log
done
for c in 1 2 8; do el "bench chunks $c"; UNMASK_DW_CHUNKS=$c b $N main.mjs bench 256 | tee -a $OUT/bench-chunks.log; done
el "bench old"; UNMASK_CUDA_FATBIN=$OLD/old.fatbin b $N old/main.mjs bench 256 | tee -a $OUT/bench-old.log
el profile; timeout 90 $N main.mjs profile 256 2>&1 | grep -v gemm_tuning > $OUT/profile.log
el done
