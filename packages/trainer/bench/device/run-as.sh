#!/bin/bash
# Device run AS (round 9): the final code's full runs (nano-clip and micro-clip, Fashion-MNIST
# 16-shot lists, 3 seeds, 30 epochs; masks copied out for the bit comparison with the cpu engine's)
# and cpuparity on the fixture. .gpu = node.xz, main.mjs, run/full.mjs + train-worker.js, koffi,
# tiny.tar.xz, fashion.bin.xz, mcs.tar.xz; fixtures.bundle.br moved out for the upload.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
mkdir -p /tmp/fx && tar -xJf tiny.tar.xz -C /tmp/fx
xz -dc fashion.bin.xz > /tmp/fashion.bin && tar -xJf mcs.tar.xz -C /tmp
el cpuparity; timeout 60 $N main.mjs cpuparity /tmp/fx/tiny-vit-p8 20 2>&1
el micro; timeout 100 $N run/full.mjs cuda /tmp/mcs /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
el nano; timeout 100 $N run/full.mjs cuda ../packages/cli/assets/demo/nano-clip.jit.pt /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
cp /tmp/fr/*.mask $OUT/
el done
