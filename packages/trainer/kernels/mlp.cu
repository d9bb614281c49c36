// MLP activation: u = c_fc output + bias (kept in place when keepU, bf16), g = QuickGELU(u) = u * sigmoid(1.702 u).
// Backward: du = dg * (s + 1.702 u s (1 - s)), s = sigmoid(1.702 u), for S signals (row r % R).
// 8 values per thread through 16-byte accesses (F a multiple of 8).
#include "common.cuh"

extern "C" __global__ void bias_gelu_fwd(bf16* __restrict__ u,  // [R, F] in: GEMM output, out: + bias
                                         const float* __restrict__ bias, bf16* __restrict__ g, long long total,
                                         int F, int keepU) {
  const long long i8 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (i8 >= total) return;
  const int col = (int)(i8 % F);
  Pack8 pu, pg;
  pu.u = *(const uint4*)(u + i8);
#pragma unroll
  for (int j = 0; j < 8; j++) {
    const float x = __bfloat162float(pu.h[j]) + bias[col + j];
    pu.h[j] = __float2bfloat16(x);
    const float xr = __bfloat162float(pu.h[j]);  // the backward sees the rounded u: use it here too
    pg.h[j] = __float2bfloat16(xr / (1.f + __expf(-1.702f * xr)));
  }
  if (keepU) *(uint4*)(u + i8) = pu.u;
  *(uint4*)(g + i8) = pg.u;
}

extern "C" __global__ void gelu_bwd(bf16* __restrict__ d,        // [S * R, F] in: dg, out: du
                                    const bf16* __restrict__ u,  // [R, F]
                                    long long totalS, long long totalR) {
  const long long i8 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (i8 >= totalS) return;
  Pack8 pd, pu;
  pd.u = *(const uint4*)(d + i8);
  pu.u = *(const uint4*)(u + i8 % totalR);
#pragma unroll
  for (int j = 0; j < 8; j++) {
    const float x = __bfloat162float(pu.h[j]);
    const float s = 1.f / (1.f + __expf(-1.702f * x));
    pd.h[j] = __float2bfloat16(__bfloat162float(pd.h[j]) * (s + 1.702f * x * s * (1.f - s)));
  }
  *(uint4*)(d + i8) = pd.u;
}
