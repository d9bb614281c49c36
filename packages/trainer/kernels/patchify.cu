// patchify: normalised image [B, 3, R, R] fp32 -> patches [B * G*G, 3 * p * p] bf16 with G = R / p,
// each row in the conv weight's (c, ky, kx) order, so the patch embedding (conv1, stride p) is a
// GEMM patches @ Wc^T, and its weight gradient dWc = dPatchOut^T @ patches. Token order gy * G + gx.
// Each thread converts V consecutive kx values (V = 8 where p is a multiple of 8: 32 bytes in,
// 16 bytes out; else V divides p) with 32-bit index arithmetic (groups = B G^2 K / V < 2^32).
#include "common.cuh"

extern "C" __global__ void patchify(const float* __restrict__ pixels, lowp* __restrict__ patches, int R, int p,
                                    int V, unsigned groups) {
  const unsigned k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= groups) return;
  const unsigned G = R / p, KV = 3 * p * p / V;
  const unsigned row = k / KV, kk = (k - row * KV) * V;  // patch row (b, gy, gx); first value (c, ky, kx)
  const unsigned b = row / (G * G), pi = row - b * G * G, gy = pi / G, gx = pi - gy * G;
  const unsigned c = kk / (p * p), rem = kk - c * p * p, ky = rem / p, kx = rem - ky * p;
  const float* src = pixels + ((long long)(b * 3 + c) * R + gy * p + ky) * R + gx * p + kx;
  lowp* dst = patches + (long long)k * V;
  if (V == 8) {
    const float4 a = *(const float4*)src, e = *(const float4*)(src + 4);
    Pack8 q;
    q.h[0] = to_lowp(a.x), q.h[1] = to_lowp(a.y), q.h[2] = to_lowp(a.z);
    q.h[3] = to_lowp(a.w), q.h[4] = to_lowp(e.x), q.h[5] = to_lowp(e.y);
    q.h[6] = to_lowp(e.z), q.h[7] = to_lowp(e.w);
    *(uint4*)dst = q.u;
  } else {
    for (int j = 0; j < V; j++) dst[j] = to_lowp(src[j]);
  }
}
