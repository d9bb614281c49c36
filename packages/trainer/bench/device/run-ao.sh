#!/bin/bash
# Device run AO (round 9): in_proj's bias in its GEMM's epilogue as a bf16 vector (run AN: cuBLASLt
# offered no algorithm for an fp32 bias with a bf16 output), the forward pair loop without its
# barrier when there is no bias pass. Attention check + fixture parity; the state after 4 steps at
# 32 with epilogues off against the session's first fatbin (.gpu/old.fatbin.xz); the step at 256
# alternating none / residual / both three times; the eager profile; nano-clip and micro-clip full
# runs (3 seeds, 30 epochs). Everything in one log ($OUT/log; the device returns few files).
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
mkdir -p /tmp/fx && tar -xJf tiny.tar.xz -C /tmp/fx
xz -dc fashion.bin.xz > /tmp/fashion.bin && tar -xJf mcs.tar.xz -C /tmp
xz -dc old.fatbin.xz > /tmp/old.fatbin
quiet() { grep -v '^{"gemm_tuning"'; }
FX=/tmp/fx/tiny-vit-p8
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el parity; timeout 150 $N main.mjs parity $FX 2>&1
el samebits-old; timeout 90 $N main.mjs samebits 32 4 UNMASK_CUDA_FATBIN=/tmp/old.fatbin,UNMASK_GEMM_EPILOGUES=none UNMASK_GEMM_EPILOGUES=none 2>&1 | quiet
el abtest; timeout 240 $N main.mjs abtest 256 3 UNMASK_GEMM_EPILOGUES=none UNMASK_GEMM_EPILOGUES=residual - 2>&1 | quiet
el profile; timeout 90 $N main.mjs profile 256 2>&1 | quiet
el micro; timeout 100 $N run/full.mjs cuda /tmp/mcs /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
el nano; timeout 100 $N run/full.mjs cuda ../packages/cli/assets/demo/nano-clip.jit.pt /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
el done
