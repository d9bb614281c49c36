#!/bin/bash
# Device run I (round 5): QuickGELU kernels with 32-bit index arithmetic (run H's gelu_bwd had
# become compute-bound on 64-bit modulos), ln_bwd loading the residual gradient with dy (one round
# trip a row, ln_bwd_768: 3 chunks a lane). Checks + fixture parity, the profile at 256, then the
# CUDA-graph step at 256 alternating the pipelined forward and attn_fwd16 (run H: eager 1 ms apart,
# graphs 0.2 ms the other way). Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el profile; timeout 150 $N main.mjs profile 256 2>&1 | tee $OUT/profile.log
for k in 1 2; do
  el "bench pipe $k"; timeout 60 $N main.mjs bench 256 2>&1 | tee -a $OUT/bench-pipe.log
  el "bench fwd16 $k"; UNMASK_ATTN_WARPS=16 timeout 60 $N main.mjs bench 256 2>&1 | tee -a $OUT/bench-fwd16.log
done
el done
