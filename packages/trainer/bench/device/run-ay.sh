#!/bin/bash
# Device run AY (round 10): Nsight Compute on the fused MLP GEMM (mlp_gemm_gelu_c1w1, the teacher's
# forward at batch 256) and on cuBLAS's GEMM of the same shape, to see why ours runs at ~500 TF/s.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
NCU="ncu --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis -c 1"
el ncu-fused; timeout 150 $NCU -k regex:mlp_gemm_gelu_c1w1 $N main.mjs mlpgemm 256 2>&1 | grep -v '^{' | cut -c1-160
el ncu-cublas; timeout 150 $NCU -k regex:'^(sm90|nvjet|cutlass|xmma)' $N main.mjs mlpgemm 256 2>&1 | grep -v '^{' | cut -c1-160
el done
