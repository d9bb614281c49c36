// Hopper (sm_90a) building blocks shared by the warpgroup-MMA kernels (attention_wgmma.cu,
// mlp_gemm.cu): shared-memory descriptors, the wgmma fences and waits, mbarriers and TMA loads.
// Everything here is inline PTX; the kernels that use it compile their bodies only where
// UNMASK_WGMMA is defined (the fatbin's sm_90a code).
#pragma once
#include <stdint.h>
#include "wgmma.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define UNMASK_WGMMA 1
#endif

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

// A 128-byte-swizzle descriptor of the tile at shared address addr (1024-byte aligned pattern):
// rows of 128 bytes (64 bf16), the 16-byte chunk c of row r at chunk c ^ (r % 8), 8 rows (1024
// bytes) between core matrices. A k16 step within the row is +32 bytes of address (+2 here).
__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(16 >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32) |
         ((uint64_t)1 << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Generic-proxy writes to shared memory (cp.async, st.shared) made visible to wgmma's reads.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

template <int N_>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N_) : "memory");
}

// After a wait: the accumulators count as written here, so the compiler cannot move their reads
// (or the writes that scale them) above the wait, to where an MMA may still be writing them.
template <int R>
__device__ __forceinline__ void landed(float (&r)[R]) {
#pragma unroll
  for (int i = 0; i < R; i++) asm volatile("" : "+f"(r[i])::"memory");
}

// ---- mbarriers (shared::cta) and TMA

__device__ __forceinline__ void mbar_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(count) : "memory");
}

// Initialised barriers made visible to the async proxy (TMA) before any use.
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }

__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(bar)) : "memory");
}

// One arrival that also announces `bytes` of TMA transfers completing this phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)), "r"(bytes)
               : "memory");
}

// Waits until the phase of parity `parity` has completed (a fresh barrier counts parity 1 done).
__device__ __forceinline__ void mbar_wait(uint64_t* bar, unsigned parity) {
  const uint32_t addr = shared_address(bar);
  uint32_t done = 0;
  while (!done)
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(addr), "r"(parity)
        : "memory");
}

// TMA: the box at (c0 inner, c1 outer) of the 2-D tensor map at global address `map` into shared
// memory at dst, completing `bytes` of the barrier's transaction count.
__device__ __forceinline__ void tma_load_2d(void* dst, const void* map, int c0, int c1, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          shared_address(dst)),
      "l"(map), "r"(c0), "r"(c1), "r"(shared_address(bar))
      : "memory");
}
