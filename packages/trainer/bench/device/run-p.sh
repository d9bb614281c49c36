#!/bin/bash
# Device run P (round 5): after row_dots became one helper for tile and global dO rows, the
# attention check (fused vs split kernels bit for bit, both signals) and the fixture parity.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
el parity; timeout 100 $N main.mjs parity ../fixtures/.unpacked/tiny-vit-p8 2>&1 | tee $OUT/parity.log
el done
