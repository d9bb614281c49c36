#!/bin/bash
# Device run U (round 6): micro-clip and nano-clip full R-AMT runs (3 seeds, 30 epochs) on the
# Fashion-MNIST 16-shot lists with round 6's kernels (the class-token last block, __fdividef
# sigmoids, the two-signal MLP backward change bits), masks copied out for the cpu comparison.
# .gpu = node.xz, fashion.bin.xz, mcs.tar.xz (prep-micro.mjs output), run/full.mjs, koffi; the
# fixtures bundle was moved out of the tree for this upload (it is not used here).
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
xz -dc fashion.bin.xz > /tmp/fashion.bin && tar -xJf mcs.tar.xz -C /tmp
el micro; timeout 150 $N run/full.mjs cuda /tmp/mcs /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1 | tee $OUT/micro.log
el nano; timeout 150 $N run/full.mjs cuda ../packages/cli/assets/demo/nano-clip.jit.pt /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1 | tee $OUT/nano.log
cp /tmp/fr/*.mask $OUT/
el done
