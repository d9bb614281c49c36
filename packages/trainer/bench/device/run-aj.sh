#!/bin/bash
# Device run AJ (round 8): the forward kernels' shared pair loop (for_each_pair_double_buffered).
# Attention check + fixture parity (attn_fwd_pipe against attn_fwd16 bit for bit over many pairs),
# the state after 4 steps at 32 against run AI's fatbin (.gpu/old.fatbin.xz, commit c2dab21), with
# the default forward and with UNMASK_ATTN_FWD=wgmma, and the step at 256. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
xz -dc old.fatbin.xz > /tmp/old.fatbin
quiet() { grep -v '^{"gemm_tuning"'; }
OLD=UNMASK_CUDA_FATBIN=/tmp/old.fatbin
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el samebits; timeout 90 $N main.mjs samebits 32 4 $OLD - 2>&1 | quiet | tee $OUT/samebits.log
el samebits-wgmma; timeout 90 $N main.mjs samebits 32 4 $OLD,UNMASK_ATTN_FWD=wgmma UNMASK_ATTN_FWD=wgmma 2>&1 | quiet | tee $OUT/samebits-wgmma.log
el bench; timeout 90 $N main.mjs bench 256 2>&1 | quiet | tee $OUT/bench.log
el done
