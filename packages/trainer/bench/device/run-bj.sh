#!/bin/bash
# Device run BJ (round 11): the ping-pong dg GEMM (mlp_gemm_dgelu_pp under UNMASK_DGELU_PP=1; not
# kept, NOTES.md round 11): the check (float64, against cuBLAS + gelu_bwd, timings), then the step
# at 256 against the cooperative one.
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
el mlpgemm; timeout 60 $N main.mjs mlpgemm 256 2>&1
el abtest; timeout 150 $N main.mjs abtest 256 2 - UNMASK_DGELU_PP=1 2>&1 | quiet
el done
