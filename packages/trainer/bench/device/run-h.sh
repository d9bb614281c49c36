#!/bin/bash
# Device run H (round 5): the pipelined forward attention (attn_fwd_pipe), QuickGELU's bias added
# again in the backward instead of a saved copy, ln_bwd reading each saved row once for both
# signals. Attention check (pipelined forward = attn_fwd16 bit for bit, also over many pairs per
# block) + fixture parity, the step profile (32, 256), batch 256 with attn_fwd16 for comparison,
# PyTorch side by side. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
field() { grep -o "\"$1\":[0-9.e+-]*" $OUT/parity.log | cut -d: -f2 | sort -g | tail -1; }
if [ "$(field block_widths_differing)" != "0" ] || [ "$(field pipelined_vs_fwd16_many_pairs_differing)" != "0" ]; then
  echo "FALLBACK: forward kernels differ"; export UNMASK_ATTN_WARPS=16; fi
el profile; timeout 150 $N main.mjs profile 32 256 2>&1 | tee $OUT/profile.log
el bench-fwd16; UNMASK_ATTN_WARPS=16 timeout 60 $N main.mjs bench 256 2>&1 | tee $OUT/bench-fwd16.log
left=$(( 560 - ($(date +%s) - T0) ))
el "torch (budget ${left}s)"; [ $left -gt 40 ] && timeout $left python3 torch_rmt_bench.py compiled:256 compiled:32 2>&1 | grep -v Warning | tee $OUT/torch.log
el done
