#!/bin/bash
# Device run BH (round 11): the Fashion-MNIST full runs with the default (both MLP GEMMs fused):
# micro-clip and nano-clip, 3 seeds, 30 epochs; the masks come back for the comparison with the
# cpu engine's. One log.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
xz -dc fashion.bin.xz > /tmp/fashion.bin && tar -xJf mcs.tar.xz -C /tmp
el micro; timeout 150 $N run/full.mjs cuda /tmp/mcs /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
el nano; timeout 150 $N run/full.mjs cuda ../packages/cli/assets/demo/nano-clip.jit.pt /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1
cp /tmp/fr/*.mask $OUT/
el done
