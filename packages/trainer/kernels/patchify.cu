// patchify: normalised image [B, 3, R, R] fp32 -> patches [B * G*G, 3 * p * p] bf16 with G = R / p,
// each row in the conv weight's (c, ky, kx) order, so the patch embedding (conv1, stride p) is a
// GEMM patches @ Wc^T, and its weight gradient dWc = dPatchOut^T @ patches. Token order gy * G + gx.
#include "common.cuh"

extern "C" __global__ void patchify(const float* __restrict__ pixels, bf16* __restrict__ patches, int B, int R,
                                    int p) {
  const int G = R / p, K = 3 * p * p;
  const long long total = (long long)B * G * G * K;
  const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int k = (int)(idx % K);
  const long long row = idx / K;
  const int b = (int)(row / (G * G)), pi = (int)(row % (G * G));
  const int gy = pi / G, gx = pi % G;
  const int c = k / (p * p), ky = (k / p) % p, kx = k % p;
  patches[idx] = __float2bfloat16(pixels[(((long long)b * 3 + c) * R + gy * p + ky) * R + gx * p + kx]);
}
