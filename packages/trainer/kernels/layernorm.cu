// LayerNorm over rows of D values (D <= 1024), eps 1e-5, fp32 statistics; one warp per row,
// 4 rows per block of 128 threads. The residual stream `resid` is fp32 [R, D]; what the backward
// needs is saved in bf16 (the LayerNorm input) plus mean and rstd in fp32.
//
//   embed_ln_fwd     x0 = [class | patch embeddings] + pos; save x0; resid = LN_pre(x0)
//   residual_ln_fwd  resid += y + bias (when y is given); save resid; out = LN(resid) (when out is given)
//   ln_recompute     out = LN(x) from the saved bf16 x and its statistics (h for dW_in in the backward)
//   ln_bwd           dresid (+)= LN'(dy) for S signals: gradient row r reads saved row r % R (one
//                    warp serves saved row r for every signal);
//                    also writes a bf16 copy of dresid (the next GEMM's input). Accumulates on the
//                    residual stream, assigns otherwise.
//   embed_ln_bwd     dx0 = LN_pre'(dresid), scattered to the patch rows dPatch [S, B * P, D] (bf16)
//   copy_rows        fp32 rows copied between strided layouts: the class tokens' residual rows
//                    gathered for the last block, their gradients scattered back
#include "common.cuh"

#define LN_EPS 1e-5f

// Vectorised row kernels (embed_ln_fwd, residual_ln_fwd, ln_recompute, ln_bwd): one warp per row, each lane
// owns chunks c = lane + 32 i (i < LN_CHUNKS) of 8 consecutive values, moved as 16-byte (bf16)
// or 2 x 16-byte (fp32) accesses. D must be a multiple of 8, at most 32 * 8 * LN_CHUNKS.
#define LN_CHUNKS 4

__device__ __forceinline__ void load8f(float (&v)[8], const float* __restrict__ p) {
  const float4 a = *(const float4*)p, b = *(const float4*)(p + 4);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

__device__ __forceinline__ void store8f(float* __restrict__ p, const float (&v)[8]) {
  *(float4*)p = make_float4(v[0], v[1], v[2], v[3]);
  *(float4*)(p + 4) = make_float4(v[4], v[5], v[6], v[7]);
}

__device__ __forceinline__ void load8h(float (&v)[8], const lowp* __restrict__ p) {
  Pack8 q;
  q.u = *(const uint4*)p;
#pragma unroll
  for (int j = 0; j < 8; j++) v[j] = lowp_to_float(q.h[j]);
}

__device__ __forceinline__ void store8h(lowp* __restrict__ p, const float (&v)[8]) {
  Pack8 q;
#pragma unroll
  for (int j = 0; j < 8; j++) q.h[j] = to_lowp(v[j]);
  *(uint4*)p = q.u;
}

__device__ __forceinline__ void store8(lowp* __restrict__ p, const float (&v)[8]) { store8h(p, v); }
__device__ __forceinline__ void store8(float* __restrict__ p, const float (&v)[8]) { store8f(p, v); }

// (v - mean) * rstd * gamma + beta for the 8 values of chunk c (gamma, beta: the row's).
__device__ __forceinline__ void ln_affine8(float (&o)[8], const float (&v)[8], float mean, float rstd,
                                           const float* __restrict__ gamma, const float* __restrict__ beta, int c) {
  float gm[8], bt[8];
  load8f(gm, gamma + c * 8);
  load8f(bt, beta + c * 8);
#pragma unroll
  for (int j = 0; j < 8; j++) o[j] = (v[j] - mean) * rstd * gm[j] + bt[j];
}

// A warp's row v (its lane's chunks, their sum `sum`) normalised: mean and rstd (two-pass, fp32)
// to meanOut / rstdOut (when given), (v - mean) * rstd * gamma + beta to out (bf16 or fp32).
template <typename T>
__device__ __forceinline__ void ln_finish(const float (&v)[LN_CHUNKS][8], float sum, long long row, int D,
                                          const float* __restrict__ gamma, const float* __restrict__ beta,
                                          float* __restrict__ meanOut, float* __restrict__ rstdOut,
                                          T* __restrict__ out) {
  const int lane = threadIdx.x & 31, D8 = D >> 3;
  const float mean = warp_sum(sum) / D;
  float q = 0.f;
#pragma unroll
  for (int i = 0; i < LN_CHUNKS; i++)
    if (lane + 32 * i < D8)
#pragma unroll
      for (int j = 0; j < 8; j++) {
        const float d = v[i][j] - mean;
        q += d * d;
      }
  const float rstd = rsqrtf(warp_sum(q) / D + LN_EPS);
  if (lane == 0 && meanOut) {
    meanOut[row] = mean;
    rstdOut[row] = rstd;
  }
#pragma unroll
  for (int i = 0; i < LN_CHUNKS; i++) {
    const int c = lane + 32 * i;
    if (c < D8) {
      float o[8];
      ln_affine8(o, v[i], mean, rstd, gamma, beta, c);
      store8(out + row * D + c * 8, o);
    }
  }
}

extern "C" __global__ void embed_ln_fwd(const lowp* __restrict__ patchOut,  // [B * (N-1), D]
                                        const float* __restrict__ cls,      // [D]
                                        const float* __restrict__ pos,      // [N, D]
                                        const float* __restrict__ gamma, const float* __restrict__ beta,
                                        lowp* __restrict__ x0Save,  // [R, D] or null
                                        float* __restrict__ meanOut, float* __restrict__ rstdOut,  // [R]
                                        float* __restrict__ resid,  // [R, D]
                                        int R, int N, int D) {
  const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= R) return;
  const int b = row / N, t = row % N, D8 = D >> 3;
  const lowp* src = patchOut + ((long long)b * (N - 1) + t - 1) * D;  // read for t > 0 only
  float v[LN_CHUNKS][8];
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < LN_CHUNKS; i++) {
    const int c = lane + 32 * i;
    if (c < D8) {
      float ps[8];
      load8f(ps, pos + (long long)t * D + c * 8);
      if (t == 0) load8f(v[i], cls + c * 8);
      else load8h(v[i], src + c * 8);
#pragma unroll
      for (int j = 0; j < 8; j++) {
        v[i][j] += ps[j];
        sum += v[i][j];
      }
      if (x0Save) store8h(x0Save + (long long)row * D + c * 8, v[i]);
    }
  }
  ln_finish(v, sum, row, D, gamma, beta, meanOut, rstdOut, resid);
}

extern "C" __global__ void residual_ln_fwd(float* __restrict__ resid,       // [R, D]
                                           const lowp* __restrict__ y,      // [R, D] or null
                                           const float* __restrict__ bias,  // [D] (with y)
                                           const float* __restrict__ gamma, const float* __restrict__ beta,
                                           lowp* __restrict__ out,      // [R, D] or null: no LayerNorm
                                           float* __restrict__ meanOut, float* __restrict__ rstdOut,
                                           lowp* __restrict__ save,  // [R, D] or null
                                           int R, int D) {
  const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= R) return;
  const int D8 = D >> 3;
  float* r = resid + (long long)row * D;
  float v[LN_CHUNKS][8];
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < LN_CHUNKS; i++) {
    const int c = lane + 32 * i;
    if (c < D8) {
      load8f(v[i], r + c * 8);
      if (y) {
        float a[8], bb[8];
        load8h(a, y + (long long)row * D + c * 8);
        load8f(bb, bias + c * 8);
#pragma unroll
        for (int j = 0; j < 8; j++) v[i][j] += a[j] + bb[j];
        store8f(r + c * 8, v[i]);
      }
      if (save) store8h(save + (long long)row * D + c * 8, v[i]);
#pragma unroll
      for (int j = 0; j < 8; j++) sum += v[i][j];
    }
  }
  if (out) ln_finish(v, sum, row, D, gamma, beta, meanOut, rstdOut, out);
}

extern "C" __global__ void ln_recompute(const lowp* __restrict__ x, const float* __restrict__ mean,
                                        const float* __restrict__ rstd, const float* __restrict__ gamma,
                                        const float* __restrict__ beta, lowp* __restrict__ out, int R, int D) {
  const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= R) return;
  const float m = mean[row], s = rstd[row];
#pragma unroll
  for (int i = 0; i < LN_CHUNKS; i++) {
    const int c = lane + 32 * i;
    if (c < (D >> 3)) {
      float v[8], o[8];
      load8h(v, x + (long long)row * D + c * 8);
      ln_affine8(o, v, m, s, gamma, beta, c);
      store8h(out + (long long)row * D + c * 8, o);
    }
  }
}

// One warp per saved row r, for every signal's gradient row s * R + r: the saved row is read once.
// CH chunks a lane (D <= 256 CH): ln_bwd_768 holds 3 for ViT-B's rows, fewer registers than 4.
#define LN_BWD_ARGS                                                                                      \
  const lowp *__restrict__ dy, /* [S * R, D] */ const lowp *__restrict__ x, /* [R, D] saved LN input */ \
      const float *__restrict__ mean, const float *__restrict__ rstd, const float *__restrict__ gamma,     \
      float *__restrict__ dresid, /* [S * R, D] */ lowp *__restrict__ dresBf, /* [S * R, D] */            \
      int SR, int R, int D, int accumulate
template <int CH>
__device__ __forceinline__ void ln_bwd_body(LN_BWD_ARGS) {
  const int xr = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (xr >= R) return;
  const int D8 = D >> 3;
  const float m = mean[xr], rs = rstd[xr];
  float xh[CH][8];
#pragma unroll
  for (int i = 0; i < CH; i++) {
    const int c = lane + 32 * i;
    if (c < D8) {
      load8h(xh[i], x + (long long)xr * D + c * 8);
#pragma unroll
      for (int j = 0; j < 8; j++) xh[i][j] = (xh[i][j] - m) * rs;
    }
  }
  for (long long row = xr; row < SR; row += R) {
    float g[CH][8], acc[CH][8];
    float s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int i = 0; i < CH; i++) {
      const int c = lane + 32 * i;
      if (c < D8) {
        float gm[8];
        load8h(g[i], dy + row * D + c * 8);
        // the residual gradient is loaded with dy, not after the row sums: one round trip a row
        if (accumulate) load8f(acc[i], dresid + row * D + c * 8);
        load8f(gm, gamma + c * 8);
#pragma unroll
        for (int j = 0; j < 8; j++) {
          g[i][j] *= gm[j];
          s1 += g[i][j];
          s2 += g[i][j] * xh[i][j];
        }
      }
    }
    s1 = warp_sum(s1) / D;
    s2 = warp_sum(s2) / D;
#pragma unroll
    for (int i = 0; i < CH; i++) {
      const int c = lane + 32 * i;
      if (c < D8) {
#pragma unroll
        for (int j = 0; j < 8; j++) {
          const float d = rs * (g[i][j] - s1 - xh[i][j] * s2);
          acc[i][j] = accumulate ? acc[i][j] + d : d;
        }
        store8f(dresid + row * D + c * 8, acc[i]);
        store8h(dresBf + row * D + c * 8, acc[i]);
      }
    }
  }
}

extern "C" __global__ void ln_bwd(LN_BWD_ARGS) {
  ln_bwd_body<LN_CHUNKS>(dy, x, mean, rstd, gamma, dresid, dresBf, SR, R, D, accumulate);
}
extern "C" __global__ void __launch_bounds__(128, 5) ln_bwd_768(LN_BWD_ARGS) {
  ln_bwd_body<3>(dy, x, mean, rstd, gamma, dresid, dresBf, SR, R, D, accumulate);
}

// Shared body: given the incoming gradient g (already in registers), the saved row and stats,
// returns dx in g.
__device__ __forceinline__ void ln_backward_row(float (&g)[MAX_PER_LANE], const lowp* __restrict__ xrow, float mean,
                                                float rstd, const float* __restrict__ gamma, int D) {
  const int lane = threadIdx.x & 31;
  float xh[MAX_PER_LANE];
  float s1 = 0.f, s2 = 0.f;
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    const int d = lane + 32 * i;
    if (d < D) {
      xh[i] = (lowp_to_float(xrow[d]) - mean) * rstd;
      g[i] *= gamma[d];
      s1 += g[i];
      s2 += g[i] * xh[i];
    }
  }
  s1 = warp_sum(s1) / D;
  s2 = warp_sum(s2) / D;
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++)
    if (lane + 32 * i < D) g[i] = rstd * (g[i] - s1 - xh[i] * s2);
}

extern "C" __global__ void embed_ln_bwd(const float* __restrict__ dresid,  // [S * R, D]
                                        const lowp* __restrict__ x0,       // [R, D]
                                        const float* __restrict__ mean, const float* __restrict__ rstd,
                                        const float* __restrict__ gamma,
                                        lowp* __restrict__ dPatch,  // [S * B * (N-1), D]
                                        int SR, int R, int N, int D) {
  const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= SR) return;
  const int xr = row % R, s = row / R, b = xr / N, t = xr % N;
  if (t == 0) return;  // the class token has no weight to train
  float g[MAX_PER_LANE];
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    const int d = lane + 32 * i;
    if (d < D) g[i] = dresid[(long long)row * D + d];
  }
  ln_backward_row(g, x0 + (long long)xr * D, mean[xr], rstd[xr], gamma, D);
  const int B = R / N;
  lowp* out = dPatch + (((long long)s * B + b) * (N - 1) + t - 1) * D;
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    const int d = lane + 32 * i;
    if (d < D) out[d] = to_lowp(g[i]);
  }
}

// f32_to_lowp: out = bf16(in), n values (the head's fp32 gradient -> the first backward GEMM's input).
extern "C" __global__ void f32_to_lowp(const float* __restrict__ in, lowp* __restrict__ out, long long n) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = to_lowp(in[i]);
}

// copy_rows: dst row r = src row r for r < rows (D values, a multiple of 4; rows srcStride and
// dstStride floats apart, multiples of 4).
extern "C" __global__ void copy_rows(const float* __restrict__ src, long long srcStride, float* __restrict__ dst,
                                     long long dstStride, int rows, int D) {
  const int D4 = D >> 2;
  const long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= (long long)rows * D4) return;
  const long long r = k / D4;
  const int c = (int)(k % D4) * 4;
  *(float4*)(dst + r * dstStride + c) = *(const float4*)(src + r * srcStride + c);
}
