#!/bin/bash
# Device run AT (round 9): with the in_proj bias in its GEMM, the warpgroup-MMA forward
# (attn_fwd_wgmma, opt-in) no longer adds a bias either: the step at 256 alternating the default
# forward and UNMASK_ATTN_FWD=wgmma four times, the eager profile of each, and the full runs
# (nano-clip, micro-clip, 3 seeds) with wgmma. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
xz -dc fashion.bin.xz > /tmp/fashion.bin && tar -xJf mcs.tar.xz -C /tmp
quiet() { grep -v '^{"gemm_tuning"'; }
el abtest; timeout 240 $N main.mjs abtest 256 4 - UNMASK_ATTN_FWD=wgmma 2>&1 | quiet
for v in UNMASK_ATTN_FWD=pipe UNMASK_ATTN_FWD=wgmma; do
  el "profile $v"; env $v timeout 90 $N main.mjs profile 256 2>&1 | quiet | grep -E 'profile|attn_fwd|^\{"bench' | cut -c1-200
done
export UNMASK_ATTN_FWD=wgmma
el micro; timeout 100 $N run/full.mjs cuda /tmp/mcs /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
el nano; timeout 100 $N run/full.mjs cuda ../packages/cli/assets/demo/nano-clip.jit.pt /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
el done
