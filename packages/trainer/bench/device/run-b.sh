#!/bin/bash
# Device run B (round 3): micro-clip and nano-clip full R-AMT runs (3 seeds, 30 epochs) on the
# Fashion-MNIST 16-shot lists with the final kernels. Logs under $OUT.
cd "$(dirname "$0")/.."
T0=$(date +%s); el() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node && xz -dc .gpu/fashion.bin.xz > /tmp/fashion.bin
tar -xJf .gpu/micro-clip.tar.xz -C /tmp && tar -xJf .gpu/rt.tar.xz -C .gpu
cd .gpu && export UNMASK_CUDA_FATBIN=$PWD/../packages/trainer/kernels/unmask.fatbin
el micro; timeout 100 /tmp/node run/full.mjs cuda /tmp/micro-clip /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1 | tee $OUT/micro.log
el nano; timeout 80 /tmp/node run/full.mjs cuda ../packages/cli/assets/demo/nano-clip.jit.pt /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1 | tee $OUT/nano.log
el done
