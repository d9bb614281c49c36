#!/bin/bash
# Device run AI (round 8, final): attn_fwd_wgmma (opt-in) and the default kernels. Attention check
# (N = 197 and 65, wgmma included) + fixture parity, the step at 256 alternating the default
# forward with UNMASK_ATTN_FWD=wgmma three times, bench 32 and 256, the eager profile. Logs under
# $OUT. (A same-bits step against round 7's fatbin cannot load it: it lacks attn_fwd_wgmma. The
# default kernels' cubins were compared here instead: byte-identical, NOTES.md round 8.)
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el abtest; timeout 200 $N main.mjs abtest 256 3 - UNMASK_ATTN_FWD=wgmma 2>&1 | quiet | tee $OUT/abtest.log
el bench; timeout 90 $N main.mjs bench 32 256 2>&1 | quiet | tee $OUT/bench.log
el profile; timeout 90 $N main.mjs profile 256 2>&1 | quiet > $OUT/profile.log
el done
