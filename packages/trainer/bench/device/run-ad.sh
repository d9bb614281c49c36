#!/bin/bash
# Device run AD (round 7): the cuda engine against the cpu engine step by step on the tiny-vit-p8
# fixture model (bench/device/cpu-parity.ts, the check the GPU test runs): 20 and 60 steps at
# lr 1e-3, the mask bits that agree after every step and the losses' largest relative difference.
cd "$(dirname "$0")/.."
DEVICE_FIXTURES=1 source packages/trainer/bench/device/device-env.sh
el cpuparity; timeout 150 $N main.mjs cpuparity ../fixtures/.unpacked/tiny-vit-p8 20 2>&1 | tee $OUT/cpuparity.log
timeout 150 $N main.mjs cpuparity ../fixtures/.unpacked/tiny-vit-p8 60 2>&1 | tee -a $OUT/cpuparity.log
el done
