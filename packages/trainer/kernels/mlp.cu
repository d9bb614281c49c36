// MLP activation: g = QuickGELU(u + bias) = x * sigmoid(1.702 x), x = bf16(u + bias), u the c_fc
// GEMM output (bf16). u is left as the GEMM wrote it: the backward adds the bias again (the same
// rounding), which saves writing a second [R, F] copy in the student's forward.
// Backward: du = dg * (s + 1.702 x s (1 - s)), s = sigmoid(1.702 x), for S signals (row r % R).
// 8 values per thread through 16-byte accesses (F a multiple of 8).
#include "common.cuh"

// x = bf16(u + bias) for 8 values of one row (col: the first one's column).
__device__ __forceinline__ void add_bias8(float (&x)[8], const Pack8& u, const float* __restrict__ bias, int col) {
#pragma unroll
  for (int j = 0; j < 8; j++) x[j] = __bfloat162float(__float2bfloat16(__bfloat162float(u.h[j]) + bias[col + j]));
}

// g may be u itself (the teacher activates in place): no __restrict__ on either.
extern "C" __global__ void bias_gelu_fwd(const bf16* u,  // [R, F] c_fc GEMM output
                                         const float* __restrict__ bias, bf16* g, long long total, int F) {
  const long long i8 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (i8 >= total) return;
  Pack8 pu, pg;
  pu.u = *(const uint4*)(u + i8);
  float x[8];
  add_bias8(x, pu, bias, (int)(i8 % F));
#pragma unroll
  for (int j = 0; j < 8; j++) pg.h[j] = __float2bfloat16(x[j] / (1.f + __expf(-1.702f * x[j])));
  *(uint4*)(g + i8) = pg.u;
}

extern "C" __global__ void gelu_bwd(bf16* __restrict__ d,        // [S * R, F] in: dg, out: du
                                    const bf16* __restrict__ u,  // [R, F] c_fc GEMM output
                                    const float* __restrict__ bias, long long totalS, long long totalR, int F) {
  const long long i8 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (i8 >= totalS) return;
  const long long r8 = i8 % totalR;
  Pack8 pd, pu;
  pd.u = *(const uint4*)(d + i8);
  pu.u = *(const uint4*)(u + r8);
  float x[8];
  add_bias8(x, pu, bias, (int)(r8 % F));
#pragma unroll
  for (int j = 0; j < 8; j++) {
    const float s = 1.f / (1.f + __expf(-1.702f * x[j]));
    pd.h[j] = __float2bfloat16(__bfloat162float(pd.h[j]) * (s + 1.702f * x[j] * s * (1.f - s)));
  }
  *(uint4*)(d + i8) = pd.u;
}
