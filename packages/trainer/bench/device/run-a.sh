#!/bin/bash
# Device run A (round 3): attention check + fixture parity + profile/bench (8-warp attention by
# default, 4-warp for comparison) + PyTorch side-by-side + the end-to-end train() on a generated
# 16,000-image 1000-class 224 px folder (random ViT-B/16). Logs under $OUT.
cd "$(dirname "$0")/.."
T0=$(date +%s); el() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node
N=/tmp/node
tar -xJf .gpu/sharp.tar.xz -C .gpu
$N --input-type=module -e "import { fixturesRoot } from './fixtures/index.js'; console.log(fixturesRoot())"
cd .gpu && export UNMASK_CUDA_FATBIN=$PWD/../packages/trainer/kernels/unmask.fatbin
nvidia-smi --query-gpu=name,driver_version,memory.used --format=csv,noheader
el parity; timeout 120 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
W=$(grep -o '"warps4_vs_default_differing":[0-9]*' $OUT/parity.log | cut -d: -f2 | sort -n | tail -1)
if [ "$W" = "0" ]; then echo "8-warp attention bit-identical to 4-warp"; else echo "FALLBACK to 4 warps ($W)"; export UNMASK_ATTN_WARPS=4; fi
el profile; timeout 150 $N main.mjs profile 32 256 2>&1 | tee $OUT/profile.log
el bench4; UNMASK_ATTN_WARPS=4 timeout 60 $N main.mjs bench 256 2>&1 | tee $OUT/bench4.log
mkdir -p /tmp/e2e; el model; $N run/e2e.mjs model /tmp/vitb16
el images; $N run/e2e.mjs images /tmp/imgs 1000 16 224 2>&1 | tee $OUT/images.log
el e2e32; timeout 160 $N run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 - /tmp/e2e/out32.umask cuda 2>&1 | tee $OUT/e2e32.log
el e2e256; timeout 140 $N run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1 | tee $OUT/e2e256.log
left=$(( 575 - ($(date +%s) - T0) ))
el "torch (budget ${left}s)"; [ $left -gt 30 ] && timeout $left python3 torch_rmt_bench.py compiled:256 compiled:32 tuned:256 2>&1 | grep -v Warning | tee $OUT/torch.log
el done
