#!/bin/bash
# Device run BC (round 10): the MLP GEMM's main loop alone (mlp_gemm_bare: no staging, no
# workers, nothing written), at c_fc's shape (K = 768, 12 K steps a tile) and at c_proj's
# (K = 3072, 48), beside cuBLAS's GEMMs of both shapes. The check and times.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
el mlpgemm; timeout 150 $N main.mjs mlpgemm 256 2>&1
el done
