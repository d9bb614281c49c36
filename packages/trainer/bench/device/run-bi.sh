#!/bin/bash
# Device run BI (round 11): Nsight Compute on the fused dg GEMM (mlp_gemm_dgelu at batch 256, the
# check's third launch) and on the fused c_fc (the teacher's, no x kept), to see where the epilogue's
# time goes. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
NCU="ncu --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section ComputeWorkloadAnalysis -c 1"
el ncu-dgelu; timeout 150 $NCU --launch-skip 2 -k regex:mlp_gemm_dgelu $N main.mjs mlpgemm 256 2>&1 | grep -v '^{' | cut -c1-170
el done
