#!/bin/bash
# Device run AV (round 10): the MLP GEMMs, the epilogue overlapped (staged tile, worker warps) with QuickGELU in their epilogues (kernels/mlp_gemm.cu,
# wgmma + TMA). Their check against float64 and against cuBLAS + the activation kernels (times at
# ViT-B/16's shapes); the fixture step; the step at 256 alternating cuBLAS (UNMASK_MLP_GEMM=cublas)
# and the fused GEMMs three times; the eager profile. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
mkdir -p /tmp/fx && tar -xJf tiny.tar.xz -C /tmp/fx
quiet() { grep -v '^{"gemm_tuning"'; }
FX=/tmp/fx/tiny-vit-p8
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv,noheader
el mlpgemm; timeout 150 $N main.mjs mlpgemm 256 2>&1
el parity; timeout 150 $N main.mjs parity $FX 2>&1
el abtest; timeout 240 $N main.mjs abtest 256 2 UNMASK_MLP_GEMM=cublas - 2>&1 | quiet
el profile; timeout 90 $N main.mjs profile 256 2>&1 | quiet | cut -c1-300
el done
