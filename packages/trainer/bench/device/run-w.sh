#!/bin/bash
# Device run W (round 6): attn_bwd_fused on persistent blocks, the next (image, head)'s q, v and dO
# loading during the last dq pass (same bits). Attention check + fixture parity (every figure must
# equal run T's), then the step at 256 alternating with the previous commit's bundle (.gpu/old),
# three each. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
for f in old/old.fatbin old/main.mjs; do xz -dc $f.xz > $f; done
quiet() { grep -v '^{"gemm_tuning"'; }
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
for k in 1 2 3; do
  el "bench new $k"; timeout 60 $N main.mjs bench 256 2>&1 | quiet | tee -a $OUT/bench-new.log
  el "bench old $k"; UNMASK_CUDA_FATBIN=$PWD/old/old.fatbin timeout 60 $N old/main.mjs bench 256 2>&1 | quiet | tee -a $OUT/bench-old.log
done
el profile; timeout 90 $N main.mjs profile 256 2>&1 | quiet > $OUT/profile.log
el done
