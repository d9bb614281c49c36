#!/bin/bash
# Device run AE (round 8): the wgmma forward attention (kernels/attention_wgmma.cu, sm_90a) against
# float64 and against attn_fwd_pipe (attention check: N = 197 and 65, and many pairs per persistent
# block), the fixture figures, the step at 256 alternating the forward kernels (pipe, wgmma2,
# wgmma4) three times, the eager profile with the default (wgmma2), and the cuda engine against the
# cpu engine over 20 steps. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el abtest; timeout 240 $N main.mjs abtest 256 3 UNMASK_ATTN_FWD=pipe UNMASK_ATTN_FWD=wgmma2 UNMASK_ATTN_FWD=wgmma4 2>&1 | quiet | tee $OUT/abtest.log
el profile; timeout 90 $N main.mjs profile 256 2>&1 | quiet > $OUT/profile.log
el cpuparity; timeout 100 $N main.mjs cpuparity ../fixtures/.unpacked/tiny-vit-p8 20 2>&1 | tee $OUT/cpuparity.log
el done
