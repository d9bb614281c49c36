#!/bin/bash
# Device run M (round 5, final figures): the softmax exponentials on the SFU alone (ex2.approx.ftz)
# and key masks only in the forward's last chunk. Attention check + fixture parity (the fixture
# errors must equal run L's to the last digit: same bits), the step at 32 and 256, A/B at 256
# against run L's fatbin (.gpu/old.fatbin), the end-to-end train() at --batch-size 256, then
# PyTorch side by side. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
NEW=$UNMASK_CUDA_FATBIN; OLD=$PWD/old.fatbin
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el bench; timeout 90 $N main.mjs bench 32 256 2>&1 | grep -v gemm_tuning | tee $OUT/bench.log
for k in 1 2; do
  el "bench old $k"; UNMASK_CUDA_FATBIN=$OLD timeout 60 $N main.mjs bench 256 2>&1 | grep -v gemm_tuning | tee -a $OUT/bench-old.log
  el "bench new $k"; timeout 60 $N main.mjs bench 256 2>&1 | grep -v gemm_tuning | tee -a $OUT/bench-new.log
done
export UV_THREADPOOL_SIZE=$(nproc)
mkdir -p /tmp/e2e; el model; $N run/e2e.mjs model /tmp/vitb16
el images; $N run/e2e.mjs images /tmp/imgs 1000 16 224 1000 2>&1 | tee $OUT/images.log
el e2e256; timeout 110 $N run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1 | tee $OUT/e2e256.log
left=$(( 585 - ($(date +%s) - T0) ))
el "torch (budget ${left}s)"; [ $left -gt 40 ] && timeout $left python3 torch_rmt_bench.py compiled:256 compiled:32 2>&1 | grep -v Warning | tee $OUT/torch.log
el done
