// Attention around cuBLAS batched GEMMs (head dim 64, as every CLIP ViT):
//   rows_to_heads   rows [SB * N, ld] (+ bias) -> heads [SB, H, N, 64]: q, k, v out of the packed qkv,
//                   and dO out of the out_proj input gradient
//   heads_to_rows   heads [SB, H, N, 64] -> rows [SB * N, ld] at a column offset: o before out_proj,
//                   dq/dk/dv into the packed dqkv
//   softmax_fwd     P = softmax(scale * scores) per row, scores fp32 [rows, N] -> P bf16 (kept)
//   softmax_bwd     dScores = scale * P * (dP - sum(dP * P)) per row -> bf16
// The GEMMs (scores = q k^T, o = P v, dP = dO v^T, dv = P^T dO, dq = dS k, dk = dS^T q) live in
// src/engines/cuda/ops/attention.ts. All moves are 16 bytes (8 bf16) wide.
#include "common.cuh"

extern "C" __global__ void rows_to_heads(const bf16* __restrict__ src, int ld, int colOffset,
                                         const float* __restrict__ bias,  // [H * 64] or null
                                         bf16* __restrict__ dst, int SB, int N, int H) {
  const long long total = (long long)SB * N * H * 8;
  const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int c8 = (int)(idx & 7);
  const int h = (int)((idx >> 3) % H);
  const long long row = (idx >> 3) / H;  // sb * N + n
  const long long sb = row / N;
  const int n = (int)(row % N);
  Pack8 p;
  p.u = *(const uint4*)(src + row * ld + colOffset + h * 64 + c8 * 8);
  if (bias) {
#pragma unroll
    for (int j = 0; j < 8; j++) p.h[j] = __float2bfloat16(__bfloat162float(p.h[j]) + bias[h * 64 + c8 * 8 + j]);
  }
  *(uint4*)(dst + ((sb * H + h) * N + n) * 64 + c8 * 8) = p.u;
}

extern "C" __global__ void heads_to_rows(const bf16* __restrict__ src, bf16* __restrict__ dst, int ld, int colOffset,
                                         int SB, int N, int H) {
  const long long total = (long long)SB * N * H * 8;
  const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int c8 = (int)(idx & 7);
  const int h = (int)((idx >> 3) % H);
  const long long row = (idx >> 3) / H;
  const long long sb = row / N;
  const int n = (int)(row % N);
  *(uint4*)(dst + row * ld + colOffset + h * 64 + c8 * 8) = *(const uint4*)(src + ((sb * H + h) * N + n) * 64 + c8 * 8);
}

// One warp per row of N <= 1024 scores; rows are `ld` apart (N rounded up to 8, so that the
// GEMMs reading P see 16-byte aligned rows and stay on the tensor-core path).
extern "C" __global__ void softmax_fwd(const float* __restrict__ scores, bf16* __restrict__ P, long long rows, int N,
                                       int ld, float scale) {
  const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float* s = scores + row * ld;
  float v[MAX_PER_LANE];
  float mx = -INFINITY;
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    const int c = lane + 32 * i;
    v[i] = c < N ? s[c] * scale : -INFINITY;
    mx = fmaxf(mx, v[i]);
  }
  mx = warp_max(mx);
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    v[i] = lane + 32 * i < N ? __expf(v[i] - mx) : 0.f;
    sum += v[i];
  }
  const float inv = 1.f / warp_sum(sum);
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    const int c = lane + 32 * i;
    if (c < N) P[row * ld + c] = __float2bfloat16(v[i] * inv);
  }
}

extern "C" __global__ void softmax_bwd(const float* __restrict__ dP, const bf16* __restrict__ P,
                                       bf16* __restrict__ dS, long long rows, int N, int ld, float scale) {
  const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  float p[MAX_PER_LANE], g[MAX_PER_LANE];
  float dot = 0.f;
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    const int c = lane + 32 * i;
    if (c < N) {
      p[i] = __bfloat162float(P[row * ld + c]);
      g[i] = dP[row * ld + c];
      dot += p[i] * g[i];
    }
  }
  dot = warp_sum(dot);
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    const int c = lane + 32 * i;
    if (c < N) dS[row * ld + c] = __float2bfloat16(scale * p[i] * (g[i] - dot));
  }
}
