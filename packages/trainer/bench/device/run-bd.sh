#!/bin/bash
# Device run BD (round 10): where the fused epilogue's time goes: the worker warps computing the
# activation through tanh.approx, doing nothing (the tile only waited for), copying it unchanged;
# beside the bare main loop (run BC) and cuBLAS. The check and times.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
el mlpgemm; timeout 150 $N main.mjs mlpgemm 256 2>&1
el done
