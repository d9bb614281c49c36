// attn_fwd_wgmma (UNMASK_ATTN_FWD=wgmma): the forward attention of attention.cu on Hopper's
// warpgroup MMAs (wgmma, sm_90a). Same inputs (packed qkv + bias) and outputs (o rows, lse2 = log2
// of each row's softmax denominator in base-2 scaled scores) as attn_fwd_pipe, another summation
// order (other bits, within bf16 rounding of them). The fatbin's Hopper code is built for sm_90a
// so this body exists there; elsewhere (sm_80, the PTX) it compiles to nothing and the host never
// launches it (kernels.ts picks it only on compute capability 9.0).
//
// Persistent blocks of two warpgroups take (image, head) pairs blockIdx.x, + gridDim.x, ...; each
// pair's q, k, v land in one of two stages of shared tiles (cp.async) while the previous pair
// computes (for_each_pair_double_buffered, as attn_fwd_pipe). A warpgroup owns 64 query rows
// (tiles mt = wg, wg + 2, ... of ceil(N / 64)):
//   S = Q K^T    m64nNCk16 x 4 (head dim 64), both operands from shared memory, NC keys a chunk;
//   P            online softmax over the chunks in registers (as attn_fwd_chunk: base-2 scaled
//                scores, running max and sum), packed to bf16 as the A fragments of the next MMA;
//   O += P V     m64n64k16 per 16 keys, A from registers, V read MN-major (imm-trans-b).
//
// Shared tiles are [rows][64] bf16, 128 bytes a row, in the 128-byte swizzle wgmma reads: the
// 16-byte chunk c of row r sits at chunk c ^ (r % 8), tiles start on 1024-byte boundaries.
// Descriptors: K-major (Q, K) SBO = 1024 (8 rows), a k16 step = +32 bytes of start address;
// MN-major (V) SBO = 1024 (8 keys), 16 keys = +2048 bytes.
#include "hopper.cuh"

// Starts copying rows [0, rows) of a swizzled [rows][64] tile from src rows row0.. (ld apart),
// column col; rows >= valid are zero-filled.
__device__ __forceinline__ void load_tile_sw128(lowp* dst, const lowp* __restrict__ src, long long row0, int ld,
                                                int col, int rows, int valid) {
  for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
    const int r = i >> 3, c = i & 7;
    const bool copy = r < valid;
    cp_async16(dst + r * 64 + ((c ^ (r & 7)) << 3), src + (row0 + (copy ? r : 0)) * ld + col + c * 8, copy);
  }
}

// Once the copies landed: bias (fp32, offset to the tile's column) added to rows < valid of a
// swizzled tile and rounded to bf16, as add_bias_tile does for attn_fwd_pipe's tiles. A pass
// covers blockDim.x / 8 rows, a multiple of 8, so a thread always meets the same row % 8 and
// stored chunk: the same 8 bias values, loaded once.
__device__ __forceinline__ void add_bias_sw128(lowp* tile, const float* __restrict__ bias, int valid) {
  const int r0 = threadIdx.x >> 3, stored = threadIdx.x & 7, c = stored ^ (r0 & 7), step = blockDim.x >> 3;
  const float4 b0 = __ldg((const float4*)(bias + c * 8)), b1 = __ldg((const float4*)(bias + c * 8 + 4));
  const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll 4
  for (int r = r0; r < valid; r += step) {
    uint4* at = (uint4*)(tile + r * 64 + stored * 8);
    Pack8 p;
    p.u = *at;
    add_bias_lowp8(p, bv);
    *at = p.u;
  }
}

// One chunk's scores and probabilities: S (fp32 accumulators), then P as bf16 A fragments.
template <int NC>
struct WgmmaChunk {
  static constexpr int KS = (NC + 15) / 16;  // 16-key steps of O += P V
  float s[NC / 2];
  uint32_t pa[KS][4];
};

// S = Q K^T for keys kc .. kc + NC - 1 into u.s (issued, not waited for; NC = 200, the one
// m64nNk16 shape wgmma.cuh has).
template <int NC>
__device__ __forceinline__ void issue_scores(WgmmaChunk<NC>& u, uint32_t qAddr, uint32_t kAddr, int kc) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 4; kk++)
    wgmma_ss_n200(u.s, sw128_desc(qAddr + kk * 32), sw128_desc(kAddr + kc * 128 + kk * 32), kk);
  wgmma_commit();
}

// The online softmax of one landed chunk (keys kc..): keys past N at -infinity (only the last
// chunk's last n-blocks have any), running maxima m of the base-2 scaled scores (so p = 2^(s
// scaleLog2 - m) is one FMA and one ex2), sums l, P packed into u.pa (the columns past NC of the
// last 16-key step 0). Returns the factors the O accumulators must be scaled by (rows g, g + 8).
template <int NC>
__device__ __forceinline__ float2 chunk_softmax(WgmmaChunk<NC>& u, float& m0, float& m1, float& l0, float& l1,
                                                int kc, int N, float scaleLog2, int q4) {
  float(&s)[NC / 2] = u.s;
  if (kc + NC > N) {
#pragma unroll
    for (int j = 0; j < NC / 8; j++)
      if (kc + 8 * j + 8 > N)
#pragma unroll
        for (int e = 0; e < 4; e++)
          if (kc + 8 * j + 2 * q4 + (e & 1) >= N) s[4 * j + e] = -INFINITY;
  }
  // maxima and sums in four independent chains a row (short dependency chains)
  float mx[2][4], ls[2][4];
#pragma unroll
  for (int i = 0; i < 4; i++) mx[0][i] = mx[1][i] = -INFINITY, ls[0][i] = ls[1][i] = 0.f;
#pragma unroll
  for (int j = 0; j < NC / 8; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) mx[e >> 1][j & 3] = fmaxf(mx[e >> 1][j & 3], s[4 * j + e]);
  const float mn0 = fmaxf(m0, quad_max(fmaxf(fmaxf(mx[0][0], mx[0][1]), fmaxf(mx[0][2], mx[0][3]))) * scaleLog2);
  const float mn1 = fmaxf(m1, quad_max(fmaxf(fmaxf(mx[1][0], mx[1][1]), fmaxf(mx[1][2], mx[1][3]))) * scaleLog2);
  const float2 alpha = make_float2(fast_exp2(m0 - mn0), fast_exp2(m1 - mn1));
  m0 = mn0;
  m1 = mn1;
#pragma unroll
  for (int j = 0; j < NC / 8; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const float p = fast_exp2(fmaf(s[4 * j + e], scaleLog2, -(e < 2 ? m0 : m1)));
      s[4 * j + e] = p;
      ls[e >> 1][j & 3] += p;
    }
  l0 = l0 * alpha.x + ((ls[0][0] + ls[0][1]) + (ls[0][2] + ls[0][3]));
  l1 = l1 * alpha.y + ((ls[1][0] + ls[1][1]) + (ls[1][2] + ls[1][3]));
#pragma unroll
  for (int ks = 0; ks < WgmmaChunk<NC>::KS; ks++) {
    u.pa[ks][0] = pack_lowp2(s[8 * ks], s[8 * ks + 1]);
    u.pa[ks][1] = pack_lowp2(s[8 * ks + 2], s[8 * ks + 3]);
    if (16 * ks + 8 < NC) {
      u.pa[ks][2] = pack_lowp2(s[8 * ks + 4], s[8 * ks + 5]);
      u.pa[ks][3] = pack_lowp2(s[8 * ks + 6], s[8 * ks + 7]);
    } else {
      u.pa[ks][2] = u.pa[ks][3] = 0u;
    }
  }
  return alpha;
}

// O += P V for the chunk's keys kc.. (issued, not waited for).
template <int NC>
__device__ __forceinline__ void issue_values(float (&oc)[32], const WgmmaChunk<NC>& u, uint32_t vAddr, int kc) {
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < WgmmaChunk<NC>::KS; ks++)
    wgmma_rs_n64_mn(oc, u.pa[ks], sw128_desc(vAddr + (kc + 16 * ks) * 128));
  wgmma_commit();
}

// One warpgroup's 64 query rows (q tile at qAddr; `valid` of them are real) against every key:
// o rows (D apart) and lse2 (when given): per chunk S, the online softmax, P V in turn (the other
// warpgroup's MMAs run during this one's softmax).
template <int NC>
__device__ __forceinline__ void attn_wgmma_tile(uint32_t qAddr, uint32_t kAddr, uint32_t vAddr, lowp* __restrict__ o,
                                                int D, float* __restrict__ lse, int valid, int N, int chunks,
                                                float scaleLog2) {
  const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
  float oc[32];
#pragma unroll
  for (int i = 0; i < 32; i++) oc[i] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  WgmmaChunk<NC> u;
  for (int c = 0; c < chunks; c++) {
    issue_scores<NC>(u, qAddr, kAddr, c * NC);
    wgmma_wait<0>();
    landed(u.s);
    const float2 alpha = chunk_softmax<NC>(u, m0, m1, l0, l1, c * NC, N, scaleLog2, q4);
#pragma unroll
    for (int j = 0; j < 8; j++) {
      oc[4 * j] *= alpha.x;
      oc[4 * j + 1] *= alpha.x;
      oc[4 * j + 2] *= alpha.y;
      oc[4 * j + 3] *= alpha.y;
    }
    issue_values<NC>(oc, u, vAddr, c * NC);
    wgmma_wait<0>();
    landed(oc);
  }
  l0 = quad_sum(l0);
  l1 = quad_sum(l1);
  const int r0 = warp * 16 + g;
  const float i0 = 1.f / l0, i1 = 1.f / l1;
#pragma unroll
  for (int j = 0; j < 8; j++) {
    const int col = 8 * j + 2 * q4;
    if (r0 < valid)
      *(lowp2*)(o + (long long)r0 * D + col) = to_lowp2(oc[4 * j] * i0, oc[4 * j + 1] * i0);
    if (r0 + 8 < valid)
      *(lowp2*)(o + (long long)(r0 + 8) * D + col) =
          to_lowp2(oc[4 * j + 2] * i1, oc[4 * j + 3] * i1);
  }
  if (lse && q4 == 0) {
    if (r0 < valid) lse[r0] = m0 + log2f(l0);
    if (r0 + 8 < valid) lse[r0 + 8] = m1 + log2f(l1);
  }
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

template <int NC>
__device__ __forceinline__ void attn_fwd_wgmma_body(const lowp* __restrict__ qkv, const float* __restrict__ bias,
                                                    lowp* __restrict__ o, float* __restrict__ lse, int N, int H,
                                                    float scaleLog2, int pairs) {
#ifdef UNMASK_WGMMA
  extern __shared__ __align__(16) unsigned char wgmma_smem[];
  // the swizzle pattern repeats every 1024 bytes: the host asks for 1 KB more than the tiles take
  lowp* base = (lowp*)(((uintptr_t)wgmma_smem + 1023) & ~(uintptr_t)1023);
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
  const int wg = threadIdx.x >> 7;
  const auto tileAddr = [&](int st, int k) { return (uint32_t)__cvta_generic_to_shared(tile(st, k)); };
  for_each_pair_double_buffered(
      pairs, issue, true,  // the async-proxy fence is needed with or without a bias
      [&](int pair, int st) {
#pragma unroll
        for (int k = 0; k < 3; k++)
          if (bias) add_bias_sw128(tile(st, k), bias + k * D + (pair % H) * 64, N);
        fence_proxy_async();
      },
      [&](int pair, int st) {
        const long long row0 = (long long)(pair / H) * N;
        for (int mt = wg; mt * 64 < N; mt += 2)
          attn_wgmma_tile<NC>(tileAddr(st, 0) + mt * 8192, tileAddr(st, 1), tileAddr(st, 2),
                              o + (row0 + mt * 64) * D + (pair % H) * 64, D,
                              lse ? lse + (long long)pair * N + mt * 64 : nullptr, N - mt * 64, N, chunks,
                              scaleLog2);
      });
#endif
}

// attn_fwd_wgmma: two warpgroups, keys in chunks of 200 (ViT-B/16 at 224 px: N = 197 in one chunk,
// no rescaling). Dynamic shared 2 * (qRows + kRows + vRows) * 128 + 1024 bytes (kernels.ts
// wgmmaForwardShared).
extern "C" __global__ void __launch_bounds__(256, 1)
    attn_fwd_wgmma(const lowp* __restrict__ qkv, const float* __restrict__ bias, lowp* __restrict__ o,
                   float* __restrict__ lse, int N, int H, float scaleLog2, int pairs) {
  attn_fwd_wgmma_body<200>(qkv, bias, o, lse, N, H, scaleLog2, pairs);
}
