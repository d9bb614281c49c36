// Shared helpers of the unmask kernels: the 16-bit float type, warp and block reductions,
// 16-byte vectors.
// Conventions for every kernel in this folder:
//   - row-major tensors, shapes written as [rows, cols] in comments;
//   - activations and GEMM operands in a 16-bit float type, `lowp`: bf16 in unmask.fatbin, fp16 in
//     unmask-fp16.fatbin (built with -DUNMASK_FP16; the engine's `precision`). Comments say bf16
//     for it; statistics / scores / gradients of scores / Adam state fp32;
//   - "S" is the number of loss signals carried by the backward pass (2: cross-entropy and KL),
//     laid out signal-major: a gradient tensor [S * R, width] reads the saved activation row r % R.
#pragma once
#include <stdint.h>

#ifdef UNMASK_FP16
#include <cuda_fp16.h>
typedef __half lowp;
typedef __half2 lowp2;
#define LOWP_PTX "f16"  // the operand type of the mma / wgmma instructions
__device__ __forceinline__ lowp to_lowp(float x) { return __float2half_rn(x); }
__device__ __forceinline__ float lowp_to_float(lowp x) { return __half2float(x); }
__device__ __forceinline__ lowp2 to_lowp2(float lo, float hi) { return __floats2half2_rn(lo, hi); }
__device__ __forceinline__ float2 lowp2_to_float2(lowp2 v) { return __half22float2(v); }
#else
#include <cuda_bf16.h>
typedef __nv_bfloat16 lowp;
typedef __nv_bfloat162 lowp2;
#define LOWP_PTX "bf16"
__device__ __forceinline__ lowp to_lowp(float x) { return __float2bfloat16(x); }
__device__ __forceinline__ float lowp_to_float(lowp x) { return __bfloat162float(x); }
__device__ __forceinline__ lowp2 to_lowp2(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
__device__ __forceinline__ float2 lowp2_to_float2(lowp2 v) { return __bfloat1622float2(v); }
#endif

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

// 8 lowp values moved as one 16-byte access.
union Pack8 {
  uint4 u;
  lowp h[8];
};

// x rounded to lowp and back: the value an fp32 result has once stored.
__device__ __forceinline__ float round_lowp(float x) { return lowp_to_float(to_lowp(x)); }

// p = bf16(p + bias) for 8 values (the in_proj bias the attention kernels add to q, k, v).
__device__ __forceinline__ void add_bias_lowp8(Pack8& p, const float (&bias)[8]) {
#pragma unroll
  for (int j = 0; j < 8; j++) p.h[j] = to_lowp(lowp_to_float(p.h[j]) + bias[j]);
}
