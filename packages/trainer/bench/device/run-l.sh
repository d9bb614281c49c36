#!/bin/bash
# Device run L (round 5): attention MMAs reordered so that independent accumulators follow each
# other (same bits), A/B against the previous fatbin (.gpu/old.fatbin) on the step at 256; then
# Nsight Compute on one attn_fwd_pipe and one attn_bwd_fused launch of a batch-256 step (stall
# reasons, pipe use), and the fused backward's SASS. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
NEW=$UNMASK_CUDA_FATBIN; OLD=$PWD/old.fatbin
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
for k in 1 2; do
  el "bench new $k"; UNMASK_CUDA_FATBIN=$NEW timeout 90 $N main.mjs bench 256 2>&1 | grep -v gemm_tuning | tee -a $OUT/bench-new.log
  el "bench old $k"; UNMASK_CUDA_FATBIN=$OLD timeout 90 $N main.mjs bench 256 2>&1 | grep -v gemm_tuning | tee -a $OUT/bench-old.log
done
NCU="ncu --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section InstructionStats -c 1"
el ncu-fwd; UNMASK_GEMM_TUNE=0 timeout 120 $NCU -k regex:attn_fwd_pipe $N main.mjs bench 256 > $OUT/ncu-fwd.txt 2>&1
el ncu-bwd; UNMASK_GEMM_TUNE=0 timeout 120 $NCU -k regex:attn_bwd_fused $N main.mjs bench 256 > $OUT/ncu-bwd.txt 2>&1
el sass; cuobjdump -sass -fun attn_bwd_fused -arch sm_90 $NEW > $OUT/sass-bwd.txt 2>&1; cuobjdump -sass -fun attn_fwd_pipe -arch sm_90 $NEW > $OUT/sass-fwd.txt 2>&1
el done
