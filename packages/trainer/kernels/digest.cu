// bits_digest: *out += sum over the 32-bit words w[i] of mix(i, w[i]) (mod 2^64), a digest of a
// buffer that changes with any bit of it (with overwhelming probability). GEMM tuning compares a
// candidate algorithm's output with cublasGemmEx's by it, without copying either to the host.
#include "common.cuh"

__device__ __forceinline__ unsigned long long mix64(unsigned long long x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

extern "C" __global__ void bits_digest(const uint32_t* __restrict__ w, long long n, unsigned long long* out) {
  unsigned long long acc = 0;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    acc += mix64(((unsigned long long)i << 32) ^ w[i]);
  for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(out, acc);
}
