#!/bin/bash
# Device run Z (round 7): how far one run's accuracy moves when its bits do. nano-clip (and
# micro-clip as time allows) on the Fashion-MNIST 16-shot lists, 3 seeds, 30 epochs, with the
# recipe's learning rate and with it scaled by 1 +- 1e-6 (FULL_LR_SCALE), on the cpu engine (16
# cores here) and the cuda engine; masks copied out. .gpu = node.xz, fashion.bin.xz, mcs.tar.xz,
# run/full.mjs, koffi, the @unmask/clip bundle; fixtures/fixtures.bundle.br moved out for the upload.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
xz -dc fashion.bin.xz > /tmp/fashion.bin && tar -xJf mcs.tar.xz -C /tmp
NANO=../packages/cli/assets/demo/nano-clip.jit.pt
full() { # engine model scale log
  FULL_LR_SCALE=$3 timeout 200 $N run/full.mjs $1 $2 /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1 | tee -a $OUT/$4.log
}
nproc
for s in 1 1.000001 0.999999; do el "cuda nano $s"; full cuda $NANO $s nano; done
for s in 1 1.000001 0.999999; do el "cuda micro $s"; full cuda /tmp/mcs $s micro; done
for s in 1 1.000001 0.999999; do el "cpu nano $s"; full cpu $NANO $s nano; done
cp /tmp/fr/*.mask $OUT/
left=$(( 560 - ($(date +%s) - T0) )); el "cpu micro (budget ${left}s)"
[ $left -gt 60 ] && FULL_LR_SCALE=1.000001 timeout $left $N run/full.mjs cpu /tmp/mcs /tmp/fashion.bin 1,2,3 30 /tmp/fr 2>&1 | tee -a $OUT/micro.log
cp /tmp/fr/*.mask $OUT/
el done
