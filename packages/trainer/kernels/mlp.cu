// MLP activation: g = QuickGELU(u + bias) = x * sigmoid(1.702 x), x = bf16(u + bias), u the c_fc
// GEMM output (bf16). u is left as the GEMM wrote it: the backward adds the bias again (the same
// rounding), which saves writing a second [R, F] copy in the student's forward.
// Backward, for S <= 2 signals at once (rows s * R + r read u row r: u is read and the derivative
// computed once for both): du = dg * (s + 1.702 x s (1 - s)), s = sigmoid(1.702 x).
// 8 values per thread through 16-byte accesses (F a multiple of 8). The sigmoids divide with
// __fdividef (a reciprocal on the SFU and a multiply, within 2 ulp of fp32, below bf16's rounding):
// the IEEE division made these memory-bound passes compute-bound (Nsight Compute, round 6). Where
// 1 + e passes 2^126 (x below about -52) it gives 0 instead of values under 1e-36.
#include "common.cuh"

// QuickGELU and its derivative at x (also the epilogues of kernels/mlp_gemm.cu).
__device__ __forceinline__ float quick_gelu(float x) { return __fdividef(x, 1.f + __expf(-1.702f * x)); }

__device__ __forceinline__ float quick_gelu_grad(float x) {
  const float s = __fdividef(1.f, 1.f + __expf(-1.702f * x));
  return s + 1.702f * x * s * (1.f - s);
}

// x = bf16(u + bias) for 8 values of one row (col: the first one's column, a multiple of 8).
__device__ __forceinline__ void add_bias8(float (&x)[8], const Pack8& u, const float* __restrict__ bias, int col) {
  const float4 b0 = *(const float4*)(bias + col), b1 = *(const float4*)(bias + col + 4);
  const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
  for (int j = 0; j < 8; j++) x[j] = round_lowp(lowp_to_float(u.h[j]) + b[j]);
}

// Thread k takes values 8k .. 8k + 7 (groups = total / 8 < 2^32): 32-bit index arithmetic, as a
// 64-bit modulo per thread made these memory-bound kernels compute-bound.
#define GROUP_INDEX(groups)                                          \
  const unsigned k = blockIdx.x * blockDim.x + threadIdx.x;         \
  if (k >= (groups)) return;                                        \
  const long long i8 = (long long)k * 8;                            \
  const int col = (int)(k % (unsigned)(F >> 3)) * 8;

// g may be u itself (the teacher activates in place): no __restrict__ on either.
extern "C" __global__ void bias_gelu_fwd(const lowp* u,  // [R, F] c_fc GEMM output
                                         const float* __restrict__ bias, lowp* g, unsigned groups, int F) {
  GROUP_INDEX(groups)
  Pack8 pu, pg;
  pu.u = *(const uint4*)(u + i8);
  float x[8];
  add_bias8(x, pu, bias, col);
#pragma unroll
  for (int j = 0; j < 8; j++) pg.h[j] = to_lowp(quick_gelu(x[j]));
  *(uint4*)(g + i8) = pg.u;
}

extern "C" __global__ void gelu_bwd(lowp* __restrict__ d,        // [S, R, F] in: dg, out: du
                                    const lowp* __restrict__ u,  // [R, F] c_fc GEMM output
                                    const float* __restrict__ bias, unsigned groups /* of one signal */, int F,
                                    int S) {
  GROUP_INDEX(groups)
  const long long second = (long long)groups * 8;  // signal 1's offset
  Pack8 pd[2], pu;
  pd[0].u = *(const uint4*)(d + i8);
  if (S > 1) pd[1].u = *(const uint4*)(d + second + i8);  // both loads in flight before any math
  pu.u = *(const uint4*)(u + i8);
  float x[8];
  add_bias8(x, pu, bias, col);
#pragma unroll
  for (int j = 0; j < 8; j++) {
    const float du = quick_gelu_grad(x[j]);
    pd[0].h[j] = to_lowp(lowp_to_float(pd[0].h[j]) * du);
    if (S > 1) pd[1].h[j] = to_lowp(lowp_to_float(pd[1].h[j]) * du);
  }
  *(uint4*)(d + i8) = pd[0].u;
  if (S > 1) *(uint4*)(d + second + i8) = pd[1].u;
}
