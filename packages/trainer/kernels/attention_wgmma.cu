// attn_fwd_wgmma*: the forward attention of attention.cu on Hopper's warpgroup MMAs (wgmma,
// sm_90a): same inputs (packed qkv + bias), same outputs (o rows, lse2 = log2 of each row's
// softmax denominator in base-2 scaled scores), another summation order (so other bits than
// attn_fwd_pipe's, within bf16 rounding of them). The fatbin's sm_90 code is built for sm_90a so
// this body exists there; elsewhere (sm_80, the PTX) it compiles to nothing and the host never
// launches it (kernels.ts picks it only on compute capability 9.0).
//
// Persistent blocks of WG warpgroups take (image, head) pairs blockIdx.x, + gridDim.x, ...; each
// pair's q, k, v land in one of two stages of shared tiles (cp.async) while the previous pair
// computes. A warpgroup owns 64 query rows (tiles mt = wg, wg + WG, ... of ceil(N / 64)):
//   S = Q K^T    m64nNCk16 x 4 (head dim 64), both operands from shared memory, NC keys a chunk;
//   P            online softmax over the chunks in registers (as attn_fwd_chunk: base-2 scaled
//                scores, running max and sum), packed to bf16 as the A fragments of the next MMA;
//   O += P V     m64n64k16 per 16 keys, A from registers, V read MN-major (imm-trans-b).
//
// Shared tiles are [rows][64] bf16, 128 bytes a row, in the 128-byte swizzle wgmma reads: the
// 16-byte chunk c of row r sits at chunk c ^ (r % 8), tiles start on 1024-byte boundaries.
// Descriptors: K-major (Q, K) SBO = 1024 (8 rows), a k16 step = +32 bytes of start address;
// MN-major (V) SBO = 1024 (8 keys), 16 keys = +2048 bytes.
#include "wgmma.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define UNMASK_WGMMA 1
#endif

// A 128-byte-swizzle descriptor of the tile at shared address addr (1024-byte aligned pattern).
__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(16 >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32) |
         ((uint64_t)1 << 62);
}

// Starts copying rows [0, rows) of a swizzled [rows][64] tile from src rows row0.. (ld apart),
// column col; rows >= valid are zero-filled.
__device__ __forceinline__ void load_tile_sw128(bf16* dst, const bf16* __restrict__ src, long long row0, int ld,
                                                int col, int rows, int valid) {
  for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
    const int r = i >> 3, c = i & 7;
    const bool copy = r < valid;
    cp_async16(dst + r * 64 + ((c ^ (r & 7)) << 3), src + (row0 + (copy ? r : 0)) * ld + col + c * 8, copy);
  }
}

// Once the copies landed: bias (fp32, offset to the tile's column) added to rows < valid of a
// swizzled tile and rounded to bf16, as add_bias_tile does for attn_fwd_pipe's tiles.
__device__ __forceinline__ void add_bias_sw128(bf16* tile, const float* __restrict__ bias, int valid) {
  for (int i = threadIdx.x; i < valid * 8; i += blockDim.x) {
    const int r = i >> 3, c = (i & 7) ^ (r & 7);
    const float4 b0 = __ldg((const float4*)(bias + c * 8)), b1 = __ldg((const float4*)(bias + c * 8 + 4));
    const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
    Pack8 p;
    p.u = *(uint4*)(tile + i * 8);
#pragma unroll
    for (int j = 0; j < 8; j++) p.h[j] = __float2bfloat16(__bfloat162float(p.h[j]) + bv[j]);
    *(uint4*)(tile + i * 8) = p.u;
  }
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Generic-proxy writes to shared memory (cp.async, st.shared) made visible to wgmma's reads.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

template <int NC>
__device__ __forceinline__ void wgmma_qk(float (&s)[NC / 2], uint64_t q, uint64_t k, int accumulate) {
  if constexpr (NC == 56) wgmma_ss_n56(s, q, k, accumulate);
  else if constexpr (NC == 104) wgmma_ss_n104(s, q, k, accumulate);
  else wgmma_ss_n200(s, q, k, accumulate);
}

// Rows, per stage, of the q (64 per warpgroup tile), k (chunks x NC) and v tiles (the last
// chunk's last 16-key step reads up to 16 * ceil(NC / 16) - NC rows past its keys, zero there).
template <int NC>
struct WgmmaTiles {
  int qRows, kRows, vRows;
  __device__ __forceinline__ WgmmaTiles(int N)
      : qRows((N + 63) / 64 * 64),
        kRows((N + NC - 1) / NC * NC),
        vRows((N + NC - 1) / NC * NC - NC + (NC + 15) / 16 * 16) {}
  __device__ __forceinline__ int stageElems() const { return (qRows + kRows + vRows) * 64; }
};

template <int WG, int NC>
__device__ __forceinline__ void attn_fwd_wgmma_body(const bf16* __restrict__ qkv, const float* __restrict__ bias,
                                                    bf16* __restrict__ o, float* __restrict__ lse, int N, int H,
                                                    float scaleLog2, int pairs) {
#ifdef UNMASK_WGMMA
  extern __shared__ __align__(16) unsigned char wgmma_smem[];
  // the swizzle pattern repeats every 1024 bytes: the host asks for 1 KB more than the tiles take
  bf16* base = (bf16*)(((uintptr_t)wgmma_smem + 1023) & ~(uintptr_t)1023);
  const WgmmaTiles<NC> t(N);
  const int D = H * 64, ld = 3 * D, chunks = t.kRows / NC;
  const auto tile = [&](int st, int k) {
    return base + st * t.stageElems() + (k == 0 ? 0 : k == 1 ? t.qRows : t.qRows + t.kRows) * 64;
  };
  const auto issue = [&](int pair, int st) {
    const long long row0 = (long long)(pair / H) * N;
    const int h = pair % H;
    load_tile_sw128(tile(st, 0), qkv, row0, ld, h * 64, t.qRows, N);
    load_tile_sw128(tile(st, 1), qkv, row0, ld, D + h * 64, t.kRows, N);
    load_tile_sw128(tile(st, 2), qkv, row0, ld, 2 * D + h * 64, t.vRows, N);
    cp_async_commit();
  };
  const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int g = lane >> 2, q4 = lane & 3;
  int pair = blockIdx.x;
  if (pair >= pairs) return;
  issue(pair, 0);
  for (int it = 0; pair < pairs; it++, pair += gridDim.x) {
    const int st = it & 1, h = pair % H;
    if (pair + (int)gridDim.x < pairs) {
      issue(pair + gridDim.x, st ^ 1);  // its stage was last read before the previous __syncthreads
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 3; k++) add_bias_sw128(tile(st, k), bias + k * D + h * 64, N);
    fence_proxy_async();
    __syncthreads();
    const uint32_t qAddr = (uint32_t)__cvta_generic_to_shared(tile(st, 0));
    const uint32_t kAddr = (uint32_t)__cvta_generic_to_shared(tile(st, 1));
    const uint32_t vAddr = (uint32_t)__cvta_generic_to_shared(tile(st, 2));
    const long long row0 = (long long)(pair / H) * N;
    for (int mt = wg; mt * 64 < N; mt += WG) {
      float oc[32];
#pragma unroll
      for (int i = 0; i < 32; i++) oc[i] = 0.f;
      float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
      for (int c = 0; c < chunks; c++) {
        const int kc = c * NC;
        float s[NC / 2];
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
          wgmma_qk<NC>(s, sw128_desc(qAddr + mt * 8192 + kk * 32), sw128_desc(kAddr + kc * 128 + kk * 32), kk);
        wgmma_commit();
        wgmma_wait_all();
        // scaled scores, keys past N at -infinity (only the last chunk has any)
        float mx0 = -INFINITY, mx1 = -INFINITY;
        const bool masked = kc + NC > N;
#pragma unroll
        for (int j = 0; j < NC / 8; j++)
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const float v = !masked || kc + 8 * j + 2 * q4 + (e & 1) < N ? s[4 * j + e] * scaleLog2 : -INFINITY;
            s[4 * j + e] = v;
            if (e < 2) mx0 = fmaxf(mx0, v);
            else mx1 = fmaxf(mx1, v);
          }
        const float mn0 = fmaxf(m0, quad_max(mx0)), mn1 = fmaxf(m1, quad_max(mx1));
        const float a0 = fast_exp2(m0 - mn0), a1 = fast_exp2(m1 - mn1);
        m0 = mn0;
        m1 = mn1;
        l0 *= a0;
        l1 *= a1;
#pragma unroll
        for (int j = 0; j < 8; j++) {
          oc[4 * j] *= a0;
          oc[4 * j + 1] *= a0;
          oc[4 * j + 2] *= a1;
          oc[4 * j + 3] *= a1;
        }
#pragma unroll
        for (int j = 0; j < NC / 8; j++)
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const float p = fast_exp2(s[4 * j + e] - (e < 2 ? m0 : m1));
            s[4 * j + e] = p;
            if (e < 2) l0 += p;
            else l1 += p;
          }
        // P (bf16) as the A fragments of 16 keys each; the columns past NC of the last step are 0
        constexpr int KS = (NC + 15) / 16;
        uint32_t pa[KS][4];
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
          pa[ks][0] = pack_bf16(s[8 * ks], s[8 * ks + 1]);
          pa[ks][1] = pack_bf16(s[8 * ks + 2], s[8 * ks + 3]);
          if (16 * ks + 8 < NC) {
            pa[ks][2] = pack_bf16(s[8 * ks + 4], s[8 * ks + 5]);
            pa[ks][3] = pack_bf16(s[8 * ks + 6], s[8 * ks + 7]);
          } else {
            pa[ks][2] = pa[ks][3] = 0u;
          }
        }
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < KS; ks++) wgmma_rs_n64_mn(oc, pa[ks], sw128_desc(vAddr + (kc + 16 * ks) * 128));
        wgmma_commit();
        wgmma_wait_all();
      }
      l0 = quad_sum(l0);
      l1 = quad_sum(l1);
      const int r0 = mt * 64 + warp * 16 + g;
      const float i0 = 1.f / l0, i1 = 1.f / l1;
#pragma unroll
      for (int j = 0; j < 8; j++) {
        const int col = h * 64 + 8 * j + 2 * q4;
        if (r0 < N)
          *(__nv_bfloat162*)(o + (row0 + r0) * D + col) = __floats2bfloat162_rn(oc[4 * j] * i0, oc[4 * j + 1] * i0);
        if (r0 + 8 < N)
          *(__nv_bfloat162*)(o + (row0 + r0 + 8) * D + col) =
              __floats2bfloat162_rn(oc[4 * j + 2] * i1, oc[4 * j + 3] * i1);
      }
      if (lse && q4 == 0) {
        if (r0 < N) lse[(long long)pair * N + r0] = m0 + log2f(l0);
        if (r0 + 8 < N) lse[(long long)pair * N + r0 + 8] = m1 + log2f(l1);
      }
    }
    __syncthreads();  // every warpgroup is done with this stage before the copies into it are issued
  }
#endif
}

// Two warpgroups of 200-key chunks (ViT-B/16 at 224 px: N = 197 in one chunk, no rescaling);
// four warpgroups of 104-key chunks (one 64-row tile each at N <= 256). Dynamic shared
// 2 * (qRows + kRows + vRows) * 128 + 1024 bytes (kernels.ts wgmmaForwardShared).
#define ATT_WGMMA_ARGS                                                                                         \
  const bf16 *__restrict__ qkv, const float *__restrict__ bias, bf16 *__restrict__ o, float *__restrict__ lse, \
      int N, int H, float scaleLog2, int pairs
extern "C" __global__ void __launch_bounds__(256, 1) attn_fwd_wgmma2(ATT_WGMMA_ARGS) {
  attn_fwd_wgmma_body<2, 200>(qkv, bias, o, lse, N, H, scaleLog2, pairs);
}
extern "C" __global__ void __launch_bounds__(512, 1) attn_fwd_wgmma4(ATT_WGMMA_ARGS) {
  attn_fwd_wgmma_body<4, 104>(qkv, bias, o, lse, N, H, scaleLog2, pairs);
}
