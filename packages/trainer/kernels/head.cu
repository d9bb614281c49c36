// The classifier head, one block of 256 threads per sample, fp32 throughout:
//   x = resid[b * N] (class token), xhat = LN_post(x), f = (xhat * gamma + beta) @ proj   [E]
//   z = scale * (f / ||f||) @ text^T                                                     [C]
// head_forward writes f and/or z (evaluation, teacher logits).
// head_step does both towers and the losses (docs/rmt-method.md 3):
//   ce = logsumexp(z_s) - z_s[y]
//   kl = T^2 * sum_c -q_c log softmax(z_s / T)_c,  q = softmax((alpha z_t + (1 - alpha) z_s) / T)
//   dz_ce = (softmax(z_s) - onehot(y)) / B,  dz_kl = T (softmax(z_s / T) - q) / B  (q held fixed)
// and carries both logit gradients back through the normalisation, the projection and LN_post into
// the class-token rows of dresid [2, R, D] (signal 0: ce, 1: kl). The other rows must be zero.
// stats[b] = (ce, kl, correct, 0); logits [2, B, C] = (student, teacher).
#include "common.cuh"

#define HEAD_THREADS 256

// For the class tokens x[t] of T towers (student and teacher in head_step): xh[t][D] = the
// normalised token, f[t][E] = projected features (unnormalised); rstd[t] out. Every output sums
// over d in order in its own chain, but a thread runs the chains of two outputs for every tower
// at once, each proj load serving them all: one chain at a time left the loop waiting on L2.
template <int T>
__device__ void head_features(const float* const (&x)[T], int D, int E, const float* __restrict__ lnw,
                              const float* __restrict__ lnb, const float* __restrict__ proj, float* const (&xh)[T],
                              float* const (&f)[T], float* red, float (&rstd)[T]) {
#pragma unroll
  for (int t = 0; t < T; t++) {
    float s = 0.f;
    for (int d = threadIdx.x; d < D; d += blockDim.x) s += x[t][d];
    const float mean = block_sum(s, red) / D;
    float q = 0.f;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
      const float c = x[t][d] - mean;
      q += c * c;
    }
    rstd[t] = rsqrtf(block_sum(q, red) / D + 1e-5f);
    for (int d = threadIdx.x; d < D; d += blockDim.x) xh[t][d] = (x[t][d] - mean) * rstd[t];
  }
  __syncthreads();
  for (int e0 = threadIdx.x; e0 < E; e0 += 2 * blockDim.x) {
    const int e1 = e0 + blockDim.x;
    const bool second = e1 < E;
    float acc[T][2];
#pragma unroll
    for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = 0.f;
#pragma unroll 4
    for (int d = 0; d < D; d++) {
      const float p0 = proj[(long long)d * E + e0], p1 = second ? proj[(long long)d * E + e1] : 0.f;
#pragma unroll
      for (int t = 0; t < T; t++) {
        const float a = xh[t][d] * lnw[d] + lnb[d];
        acc[t][0] += a * p0;
        acc[t][1] += a * p1;
      }
    }
#pragma unroll
    for (int t = 0; t < T; t++) {
      f[t][e0] = acc[t][0];
      if (second) f[t][e1] = acc[t][1];
    }
  }
  __syncthreads();
}

// f[] normalised in place; z[c] = scale * fhat . text[c]. Returns 1 / ||f||.
__device__ float head_logits(float* f, int E, int C, const float* __restrict__ text, float scale, float* z,
                             float* red) {
  float q = 0.f;
  for (int e = threadIdx.x; e < E; e += blockDim.x) q += f[e] * f[e];
  const float inv = rsqrtf(block_sum(q, red));
  for (int e = threadIdx.x; e < E; e += blockDim.x) f[e] *= inv;
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int c = warp; c < C; c += warps) {
    float acc = 0.f;
    for (int e = lane; e < E; e += 32) acc += f[e] * text[(long long)c * E + e];
    acc = warp_sum(acc);
    if (lane == 0) z[c] = scale * acc;
  }
  __syncthreads();
  return inv;
}

extern "C" __global__ void head_forward(const float* __restrict__ resid, int N, int D, int E, int C,
                                        const float* __restrict__ lnw, const float* __restrict__ lnb,
                                        const float* __restrict__ proj, const float* __restrict__ text, float scale,
                                        float* __restrict__ features,  // [B, E] or null
                                        float* __restrict__ logits) {  // [B, C] or null
  extern __shared__ float sm[];
  __shared__ float red[32];
  const int b = blockIdx.x;
  float *xh = sm, *f = xh + D, *z = f + E;
  float rstd[1];
  head_features<1>({resid + (long long)b * N * D}, D, E, lnw, lnb, proj, {xh}, {f}, red, rstd);
  if (features)
    for (int e = threadIdx.x; e < E; e += blockDim.x) features[(long long)b * E + e] = f[e];
  if (!logits) return;
  __syncthreads();
  head_logits(f, E, C, text, scale, z, red);
  for (int c = threadIdx.x; c < C; c += blockDim.x) logits[(long long)b * C + c] = z[c];
}

extern "C" __global__ void head_step(const float* __restrict__ residS, const float* __restrict__ residT, int N, int D,
                                     int E, int C, const float* __restrict__ lnw, const float* __restrict__ lnb,
                                     const float* __restrict__ proj, const float* __restrict__ text, float scale,
                                     const int32_t* __restrict__ labels, int B, float T, float alpha,
                                     float lossScale,             // both losses' factor (fp16: precision.ts)
                                     float* __restrict__ dresid,  // [2, R, D]
                                     float* __restrict__ stats,   // [B, 4]
                                     float* __restrict__ logits)  // [2, B, C]
{
  extern __shared__ float sm[];
  __shared__ float red[32];
  const int b = blockIdx.x, R = B * N;
  float *xhS = sm, *xhT = xhS + D, *fS = xhT + D, *fT = fS + E, *zS = fT + E, *zT = zS + C;
  float *dz0 = zT + C, *dz1 = dz0 + C, *df0 = dz1 + C, *df1 = df0 + E, *dx0 = df1 + E, *dx1 = dx0 + D;
  float rstds[2];
  head_features<2>({residS + (long long)b * N * D, residT + (long long)b * N * D}, D, E, lnw, lnb, proj, {xhS, xhT},
                   {fS, fT}, red, rstds);
  const float rstd = rstds[0];
  const float invS = head_logits(fS, E, C, text, scale, zS, red);
  head_logits(fT, E, C, text, scale, zT, red);

  float m = -INFINITY, mq = -INFINITY;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    m = fmaxf(m, zS[c]);
    mq = fmaxf(mq, (alpha * zT[c] + (1.f - alpha) * zS[c]) / T);
  }
  const float mxS = block_max(m, red);
  const float mxQ = block_max(mq, red);
  float s1 = 0.f, sT = 0.f, sQ = 0.f, first = -INFINITY;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    s1 += __expf(zS[c] - mxS);
    sT += __expf((zS[c] - mxS) / T);
    sQ += __expf((alpha * zT[c] + (1.f - alpha) * zS[c]) / T - mxQ);
    if (zS[c] == mxS) first = fmaxf(first, -(float)c);
  }
  const float sumS = block_sum(s1, red), sumST = block_sum(sT, red), sumQ = block_sum(sQ, red);
  const int argmax = (int)(-block_max(first, red));
  const int y = labels[b];
  float kl = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float p = __expf(zS[c] - mxS) / sumS;
    const float logpT = (zS[c] - mxS) / T - __logf(sumST);
    const float q = __expf((alpha * zT[c] + (1.f - alpha) * zS[c]) / T - mxQ) / sumQ;
    kl -= q * logpT;
    dz0[c] = (p - (c == y ? 1.f : 0.f)) * lossScale / B;
    dz1[c] = T * (__expf(logpT) - q) * lossScale / B;
  }
  kl = block_sum(kl, red) * T * T;
  if (threadIdx.x == 0) {
    stats[b * 4 + 0] = __logf(sumS) + mxS - zS[y];
    stats[b * 4 + 1] = kl;
    stats[b * 4 + 2] = argmax == y ? 1.f : 0.f;
    stats[b * 4 + 3] = 0.f;
  }
  if (logits)
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      logits[(long long)b * C + c] = zS[c];
      logits[((long long)B + b) * C + c] = zT[c];
    }
  __syncthreads();
  // d fhat = scale * dz @ text, then through the normalisation: df = (dfhat - fhat (fhat . dfhat)) / ||f||
  float dot0 = 0.f, dot1 = 0.f;
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    float a0 = 0.f, a1 = 0.f;
    for (int c = 0; c < C; c++) {
      const float t = text[(long long)c * E + e];
      a0 += dz0[c] * t;
      a1 += dz1[c] * t;
    }
    df0[e] = scale * a0;
    df1[e] = scale * a1;
    dot0 += fS[e] * df0[e];
    dot1 += fS[e] * df1[e];
  }
  dot0 = block_sum(dot0, red);
  dot1 = block_sum(dot1, red);
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    df0[e] = (df0[e] - fS[e] * dot0) * invS;
    df1[e] = (df1[e] - fS[e] * dot1) * invS;
  }
  __syncthreads();
  // d(LN_post output) = proj @ df, a warp per row of proj, two rows at a time (independent sums)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int d0 = warp; d0 < D; d0 += 2 * warps) {
    const int d1 = d0 + warps;
    const bool second = d1 < D;
    float a0 = 0.f, a1 = 0.f, b0 = 0.f, b1 = 0.f;
    for (int e = lane; e < E; e += 32) {
      const float w = proj[(long long)d0 * E + e], v = second ? proj[(long long)d1 * E + e] : 0.f;
      a0 += w * df0[e];
      a1 += w * df1[e];
      b0 += v * df0[e];
      b1 += v * df1[e];
    }
    a0 = warp_sum(a0);
    a1 = warp_sum(a1);
    b0 = warp_sum(b0);
    b1 = warp_sum(b1);
    if (lane == 0) {
      dx0[d0] = a0 * lnw[d0];
      dx1[d0] = a1 * lnw[d0];
      if (second) {
        dx0[d1] = b0 * lnw[d1];
        dx1[d1] = b1 * lnw[d1];
      }
    }
  }
  __syncthreads();
  float g0 = 0.f, g1 = 0.f, h0 = 0.f, h1 = 0.f;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    g0 += dx0[d];
    g1 += dx1[d];
    h0 += dx0[d] * xhS[d];
    h1 += dx1[d] * xhS[d];
  }
  g0 = block_sum(g0, red) / D;
  g1 = block_sum(g1, red) / D;
  h0 = block_sum(h0, red) / D;
  h1 = block_sum(h1, red) / D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    dresid[(long long)b * N * D + d] = rstd * (dx0[d] - g0 - xhS[d] * h0);
    dresid[((long long)R + (long long)b * N) * D + d] = rstd * (dx1[d] - g1 - xhS[d] * h1);
  }
}
