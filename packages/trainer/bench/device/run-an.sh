#!/bin/bash
# Device run AN (round 9): GEMM epilogues (in_proj's bias in its GEMM, out_proj's and c_proj's
# bias and residual add into the fp32 stream). Attention check + fixture parity with and without
# them; the state after 4 steps at 32 with them off against HEAD~'s fatbin (.gpu/old.fatbin.xz:
# the kernels' null-bias paths must leave the bias-on-load path's bits alone), and each variant
# against none; cpuparity; the step at 256 alternating none / both / qkv / residual three times;
# bench 32 256; the eager profile; nano-clip and micro-clip full runs (3 seeds, 30 epochs).
# .gpu = node.xz, main.mjs, run/full.mjs + train-worker.js, koffi, tiny.tar.xz (the fixture's hf
# model and RMT step), fashion.bin.xz, mcs.tar.xz, old.fatbin.xz; fixtures.bundle.br moved out.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
mkdir -p /tmp/fx && tar -xJf tiny.tar.xz -C /tmp/fx
xz -dc fashion.bin.xz > /tmp/fashion.bin && tar -xJf mcs.tar.xz -C /tmp
xz -dc old.fatbin.xz > /tmp/old.fatbin
quiet() { grep -v '^{"gemm_tuning"'; }
FX=/tmp/fx/tiny-vit-p8
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
el parity; timeout 150 $N main.mjs parity $FX 2>&1 | tee $OUT/parity.log
el parity-none; UNMASK_GEMM_EPILOGUES=none timeout 100 $N main.mjs parity $FX 2>&1 | tail -n 8 | tee $OUT/parity-none.log
el samebits-old; timeout 90 $N main.mjs samebits 32 4 UNMASK_CUDA_FATBIN=/tmp/old.fatbin,UNMASK_GEMM_EPILOGUES=none UNMASK_GEMM_EPILOGUES=none 2>&1 | quiet | tee $OUT/samebits-old.log
el samebits-variants; timeout 90 $N main.mjs samebits 32 4 UNMASK_GEMM_EPILOGUES=none - UNMASK_GEMM_EPILOGUES=qkv UNMASK_GEMM_EPILOGUES=residual 2>&1 | quiet | tee $OUT/samebits-variants.log
el cpuparity; timeout 60 $N main.mjs cpuparity $FX 20 2>&1 | tee $OUT/cpuparity.log
el abtest; timeout 300 $N main.mjs abtest 256 3 UNMASK_GEMM_EPILOGUES=none - UNMASK_GEMM_EPILOGUES=qkv UNMASK_GEMM_EPILOGUES=residual 2>&1 | quiet | tee $OUT/abtest.log
el bench; timeout 90 $N main.mjs bench 32 256 2>&1 | quiet | tee $OUT/bench.log
el profile; timeout 90 $N main.mjs profile 256 2>&1 | quiet > $OUT/profile.log
el micro; timeout 100 $N run/full.mjs cuda /tmp/mcs /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1 | tee $OUT/micro.log
el nano; timeout 100 $N run/full.mjs cuda ../packages/cli/assets/demo/nano-clip.jit.pt /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1 | tee $OUT/nano.log
cp /tmp/fr/*.mask $OUT/ 2>/dev/null
el done
