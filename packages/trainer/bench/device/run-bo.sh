#!/bin/bash
# Device run BO (round 12): the step at 32 and 256 in fp16 (the new default) and bf16, PyTorch
# torch.compile side by side in its reference bf16 autocast and in fp16 autocast (the reference
# script with bfloat16 replaced by float16), then the end-to-end train() at --batch-size 256 in
# fp16 (a random ViT-B/16 directory and 16,000 224 px JPEGs of 1,000 classes generated on the
# device). One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
sed 's/torch.bfloat16/torch.float16/g' torch_rmt_bench.py > torch_rmt_bench_fp16.py
el bench-fp16; timeout 90 $N main.mjs bench 32 256 256 2>&1 | quiet
el torch-bf16; timeout 150 python3 torch_rmt_bench.py compiled:32 compiled:256 2>&1 | grep -v Warning
el bench-bf16; UNMASK_PRECISION=bf16 timeout 90 $N main.mjs bench 256 256 2>&1 | quiet
el torch-fp16; timeout 150 python3 torch_rmt_bench_fp16.py compiled:256 2>&1 | grep -v Warning
el bench-fp16-again; timeout 90 $N main.mjs bench 256 256 2>&1 | quiet
xz -dc run/e2e.mjs.xz > run/e2e.mjs  # carried as xz (the upload limit)
export UV_THREADPOOL_SIZE=$(nproc)
mkdir -p /tmp/e2e; el model; $N run/e2e.mjs model /tmp/vitb16
el images; $N run/e2e.mjs images /tmp/imgs 1000 16 224 1000 2>&1
el e2e256-fp16; timeout 150 $N run/e2e.mjs train /tmp/vitb16 /tmp/imgs 10 256 /tmp/e2e/out256.umask cuda 2>&1
el done
