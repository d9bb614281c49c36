#!/bin/bash
# Device run AF (round 8): the wgmma forward with bias values loaded once a pair, scores scaled
# inside the exponent's FMA, maxima and sums in four chains; attention check, the step at 256
# alternating pipe / wgmma2 / wgmma4 twice, then Nsight Compute on one launch each of
# attn_fwd_wgmma2, attn_fwd_wgmma4 and attn_fwd_pipe (stall reasons). Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | head -2 | tee $OUT/parity.log
el abtest; timeout 200 $N main.mjs abtest 256 2 UNMASK_ATTN_FWD=pipe UNMASK_ATTN_FWD=wgmma2 UNMASK_ATTN_FWD=wgmma4 2>&1 | quiet | tee $OUT/abtest.log
NCU="ncu --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section InstructionStats -c 1"
for k in wgmma2 wgmma4 pipe; do
  el ncu-$k; UNMASK_ATTN_FWD=$k UNMASK_GEMM_TUNE=0 timeout 100 $NCU -k regex:attn_fwd_ $N main.mjs bench 256 > $OUT/ncu-$k.txt 2>&1
done
el done
