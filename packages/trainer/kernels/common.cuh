// Shared helpers of the unmask kernels: bf16 type, warp and block reductions, 16-byte vectors.
// Conventions for every kernel in this folder:
//   - row-major tensors, shapes written as [rows, cols] in comments;
//   - activations bf16, statistics / scores / gradients of scores / Adam state fp32;
//   - "S" is the number of loss signals carried by the backward pass (2: cross-entropy and KL),
//     laid out signal-major: a gradient tensor [S * R, width] reads the saved activation row r % R.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

#define MAX_PER_LANE 32  // a warp holds rows of at most 32 * 32 = 1024 values in registers

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* scratch /* [32] shared */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < warps ? scratch[lane] : 0.f;
  return warp_sum(t);
}

__device__ __forceinline__ float block_max(float v, float* scratch /* [32] shared */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(t);
}

// 8 bf16 values moved as one 16-byte access.
union Pack8 {
  uint4 u;
  bf16 h[8];
};

// x rounded to bf16 and back: the value an fp32 result has once stored as bf16.
__device__ __forceinline__ float round_bf16(float x) { return __bfloat162float(__float2bfloat16(x)); }

// p = bf16(p + bias) for 8 values (the in_proj bias the attention kernels add to q, k, v).
__device__ __forceinline__ void add_bias_bf16x8(Pack8& p, const float (&bias)[8]) {
#pragma unroll
  for (int j = 0; j < 8; j++) p.h[j] = __float2bfloat16(__bfloat162float(p.h[j]) + bias[j]);
}
