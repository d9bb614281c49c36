#!/bin/bash
# Device run AG (round 8): the pipelined wgmma forward (attn_fwd_wgmmap: two 104-key chunks, the second
# chunk's S during the first one's softmax) next to attn_fwd_wgmma2 and attn_fwd_pipe: attention check,
# the step at 256 alternating the three three times, Nsight Compute on one launch of each wgmma
# kernel, their SASS. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | head -2 | tee $OUT/parity.log
el abtest; timeout 240 $N main.mjs abtest 256 3 UNMASK_ATTN_FWD=pipe UNMASK_ATTN_FWD=wgmma2 UNMASK_ATTN_FWD=wgmmap 2>&1 | quiet | tee $OUT/abtest.log
NCU="ncu --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis --section InstructionStats -c 1"
for k in wgmmap wgmma2; do
  el ncu-$k; UNMASK_ATTN_FWD=$k UNMASK_GEMM_TUNE=0 timeout 100 $NCU -k regex:attn_fwd_ $N main.mjs bench 256 > $OUT/ncu-$k.txt 2>&1
  cuobjdump -sass -fun attn_fwd_$k -arch sm_90a $UNMASK_CUDA_FATBIN > $OUT/sass-$k.txt 2>&1
done
el done
