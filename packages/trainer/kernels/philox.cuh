// Philox4x32-10, the same function as src/random/philox.ts, so that both engines draw identical
// gradient-dropout numbers:
//   key     = (seed, 0)
//   counter = (floor(i / 4), step, tensorIndex, 0)   for element i of masked tensor tensorIndex
//   u       = (word[i % 4] >> 8) * 2^-24             in [0, 1), exact in float32
#pragma once
#include <stdint.h>

__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint32_t k0, uint32_t k1) {
#pragma unroll
  for (int round = 0; round < 10; round++) {
    const uint32_t lo0 = 0xD2511F53u * c.x, hi0 = __umulhi(0xD2511F53u, c.x);
    const uint32_t lo1 = 0xCD9E8D57u * c.z, hi1 = __umulhi(0xCD9E8D57u, c.z);
    c = make_uint4(hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

__device__ __forceinline__ float philox_uniform(uint32_t word) { return (float)(word >> 8) * (1.0f / 16777216.0f); }
