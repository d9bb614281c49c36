#!/bin/bash
# Device run E (round 4): cp.async tile loads in the forward and fused backward attention.
# Attention check + fixture parity, the step profile (32, 256) with the defaults, and batch 256
# with the 8-warp forward and with the split backward for comparison. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
field() { grep -o "\"$1\":[0-9.e+-]*" $OUT/parity.log | cut -d: -f2 | sort -g | tail -1; }
if [ "$(field block_widths_differing)" != "0" ]; then echo "FALLBACK: forward widths differ"; export UNMASK_ATTN_WARPS=8; fi
if [ "$(field fused_vs_split_dkdv_differing)" != "0" ]; then echo "FALLBACK: fused backward differs"; export UNMASK_ATTN_BWD=split; fi
el profile; timeout 150 $N main.mjs profile 32 256 2>&1 | tee $OUT/profile.log
el bench-fwd8; UNMASK_ATTN_WARPS=8 timeout 60 $N main.mjs bench 32 256 2>&1 | tee $OUT/bench-fwd8.log
el bench-split; UNMASK_ATTN_BWD=split timeout 60 $N main.mjs bench 256 2>&1 | tee $OUT/bench-split.log
el done
