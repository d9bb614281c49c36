#!/bin/bash
# Device run AH (round 8): where attn_fwd_wgmmap and attn_fwd_pipe stall (Nsight Compute, one
# launch each in a batch-256 step: the per-reason stall counts per issued instruction). Logs under $OUT.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
M='regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio'
for k in wgmmap pipe; do
  el ncu-$k; UNMASK_ATTN_FWD=$k UNMASK_GEMM_TUNE=0 timeout 100 ncu --clock-control none --metrics "$M,gpu__time_duration.sum,smsp__inst_executed.sum" -c 1 -k regex:attn_fwd_ $N main.mjs bench 256 > $OUT/ncu-$k.txt 2>&1
done
el done
