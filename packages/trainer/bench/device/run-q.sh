#!/bin/bash
# Device run Q (round 6): the last block for the class tokens alone (class-query attention, out_proj,
# LN2 and MLP on B rows) and the MLP backward for both signals at once (gelu_bwd reads u once).
# Attention check (cls_* against the float64 reference) + fixture parity, A/B at 256 against the
# previous commit's bundle (.gpu/old: main.mjs + fatbin), the eager profile at 256, then Nsight
# Compute on one launch each of the four elementwise kernels. Logs under $OUT.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
OLD=$PWD/old
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el parity; timeout 150 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
for k in 1 2; do
  el "bench new $k"; timeout 90 $N main.mjs bench 256 2>&1 | grep -v gemm_tuning | tee -a $OUT/bench-new.log
  el "bench old $k"; UNMASK_CUDA_FATBIN=$OLD/old.fatbin timeout 90 $N old/main.mjs bench 256 2>&1 | grep -v gemm_tuning | tee -a $OUT/bench-old.log
done
el profile; timeout 120 $N main.mjs profile 256 2>&1 | grep -v gemm_tuning | tee $OUT/profile.log
NCU="ncu --clock-control none --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis -c 1"
for k in bias_gelu_fwd gelu_bwd residual_ln_fwd ln_bwd_768; do
  el "ncu $k"; UNMASK_GEMM_TUNE=0 timeout 100 $NCU -k regex:$k $N main.mjs bench 256 > $OUT/ncu-$k.txt 2>&1
done
el done
