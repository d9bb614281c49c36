#!/bin/bash
# Device run BF (round 11): the backward's dg GEMM fused with QuickGELU' (mlp_gemm_dgelu: x loaded
# by TMA into the staged tile, du computed in place by the consumers), the default with the fused
# c_fc. The check (float64 and against cuBLAS + gelu_bwd, timings); the step at 256 against c_fc
# alone fused (UNMASK_MLP_GEMM=forward, round 10's default) twice. One log. (The run's three
# earlier calls measured the variants named in NOTES.md, round 11.)
cd "$(dirname "$0")/.."
source packages/trainer/bench/device/device-env.sh
quiet() { grep -v '^{"gemm_tuning"'; }
el mlpgemm; timeout 120 $N main.mjs mlpgemm 256 2>&1
el abtest; timeout 300 $N main.mjs abtest 256 2 - UNMASK_MLP_GEMM=forward 2>&1 | quiet
el done
