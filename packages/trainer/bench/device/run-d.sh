#!/bin/bash
# Device run D (round 4): the 16-warp forward and the fused backward attention. Attention check
# (every forward width bit-identical; fused dk/dv = split dk/dv bit for bit; errors against float64)
# and fixture parity, then the step profile (32, 256) with the defaults, batch 256 with the round-3
# kernels for comparison, the end-to-end train() at --batch-size 256 on a generated 16,000-image
# folder, and PyTorch side by side. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
nvidia-smi --query-gpu=name,driver_version,memory.used --format=csv,noheader
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
field() { grep -o "\"$1\":[0-9.e+-]*" $OUT/parity.log | cut -d: -f2 | sort -g | tail -1; }
if [ "$(field block_widths_differing)" != "0" ]; then echo "FALLBACK: forward widths differ"; export UNMASK_ATTN_WARPS=8; fi
if [ "$(field fused_vs_split_dkdv_differing)" != "0" ]; then echo "FALLBACK: fused backward differs"; export UNMASK_ATTN_BWD=split; fi
el profile; timeout 150 $N main.mjs profile 32 256 2>&1 | tee $OUT/profile.log
el bench-round3; UNMASK_ATTN_WARPS=8 UNMASK_ATTN_BWD=split timeout 60 $N main.mjs bench 256 2>&1 | tee $OUT/bench-round3.log
el bench-fwd8; UNMASK_ATTN_WARPS=8 timeout 60 $N main.mjs bench 256 2>&1 | tee $OUT/bench-fwd8.log
mkdir -p /tmp/e2e; el model; $N run/e2e.mjs model /tmp/vitb16
el images; $N run/e2e.mjs images /tmp/imgs 1000 16 224 2>&1 | tee $OUT/images.log
# as bin/unmask.js does before anything starts libuv's pool: one decode thread per core
export UV_THREADPOOL_SIZE=$(nproc)
el e2e256; timeout 150 $N run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1 | tee $OUT/e2e256.log
left=$(( 580 - ($(date +%s) - T0) ))
el "torch (budget ${left}s)"; [ $left -gt 40 ] && timeout $left python3 torch_rmt_bench.py compiled:256 compiled:32 2>&1 | grep -v Warning | tee $OUT/torch.log
el done
