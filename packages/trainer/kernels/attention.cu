// Fused attention for head dim 64 (every CLIP ViT), flash-style with bf16 tensor-core MMAs
// (mma.sync m16n8k16, fp32 accumulation). q, k, v are read straight out of the packed in_proj
// output qkv [B * N, 3D] (the bias added on load and rounded to bf16 as the GEMM output is, unless
// the GEMM's epilogue added it already: bias null), so no head-major copies exist; o and the
// gradients are written straight into row layouts.
//
//   attn_fwd       o = softmax(scale q k^T) v per (image, head), online softmax over 32-key
//                  chunks; keeps only lse2 = log2 of each row's softmax denominator (scaled scores
//                  in base 2), not the probabilities. attn_fwd_pipe: the same per row, with
//                  persistent blocks whose next (image, head) tiles arrive (cp.async) during this one.
//   attn_bwd_dq    dq = scale * dS k,  dS = P * (dP - D), P = exp2(scale2 q k^T - lse2), dP = dO v^T,
//                  D = rowsum(dO * o): per 64 query rows, all keys in shared memory
//   attn_bwd_dkdv  dk = scale * dS^T q, dv = P^T dO: per 64 keys, all queries in shared memory
// Both backward kernels recompute P from lse2 (no atomics: each output row has one owner), and
// carry S signals (blockIdx.z): gradient rows s * R + r read saved row r.
//   attn_bwd_fused one block per (image, head, signal) while every token fits in shared memory
//                  (N <= 208, ViT-B/16 at 224 px): the dk/dv pass of attn_bwd_dkdv, which also
//                  keeps dS^T (bf16) in shared memory, then dq = scale * dS k from it. S and dP are
//                  computed once instead of twice (10 of the split kernels' 14 matmul units), and
//                  q, k, v, dO are loaded once per (image, head) instead of once per 128 rows.
//
// Layout: a block of W warps (4, 8, 16 forward; 13 fused), each warp owns 16 rows (queries, or
// keys for dkdv). Shared tiles
// are [rows][72] bf16 (64 + 8 padding: conflict-free ldmatrix). Fragment layouts are the PTX
// ISA's for m16n8k16 (g = lane / 4, t = lane % 4): C rows g and g + 8, columns 2t and 2t + 1;
// an S accumulator pair of n-tiles re-packs in registers as the A operand of the next MMA.
#include "common.cuh"

#define ATT_LD 72

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const lowp* p) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const lowp* p) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// Not volatile: a pure register operation, so the compiler may interleave independent MMAs.
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32." LOWP_PTX "." LOWP_PTX ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 2^x by the SFU alone (ex2.approx.ftz): exp2f adds a rescaling around it for results below 2^-126,
// 3 more instructions per probability; those results (flushed to 0 here) change no sum or bf16 P.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t pack_lowp2(float lo, float hi) {
  lowp2 v = to_lowp2(lo, hi);
  return *(uint32_t*)&v;
}

// A operand (16 rows x 16 k) out of two C accumulators holding columns k0..7 and k0+8..15.
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = pack_lowp2(c0[0], c0[1]);
  a[1] = pack_lowp2(c0[2], c0[3]);
  a[2] = pack_lowp2(c1[0], c1[1]);
  a[3] = pack_lowp2(c1[2], c1[3]);
}

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// bias + offset, or null where there is none (the in_proj GEMM's epilogue added it to qkv)
__device__ __forceinline__ const float* bias_at(const float* bias, int offset) { return bias ? bias + offset : nullptr; }

// rows [0, rows) of a [rows][ATT_LD] tile from src rows row0.. (ld elements apart) at column col;
// rows >= valid are zero. bias (fp32, already offset to col) is added and rounded to bf16.
// blockDim.x is a multiple of 8, so each thread always serves the same 8 columns; loads are
// issued LOAD_UNROLL at a time so that many are in flight before the first is used.
#define LOAD_UNROLL 8
__device__ __forceinline__ void load_tile(lowp* dst, const lowp* __restrict__ src, long long row0, int ld, int col,
                                          const float* __restrict__ bias, int rows, int valid) {
  const int c8 = threadIdx.x & 7, total = rows * 8;
  float bv[8];
#pragma unroll
  for (int j = 0; j < 8; j++) bv[j] = bias ? bias[c8 * 8 + j] : 0.f;
  for (int base = threadIdx.x; base < total; base += LOAD_UNROLL * blockDim.x) {
    uint4 v[LOAD_UNROLL];
#pragma unroll
    for (int u = 0; u < LOAD_UNROLL; u++) {
      const int i = base + u * blockDim.x, r = i >> 3;
      v[u] = i < total && r < valid ? *(const uint4*)(src + (row0 + r) * ld + col + c8 * 8) : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int u = 0; u < LOAD_UNROLL; u++) {
      const int i = base + u * blockDim.x, r = i >> 3;
      if (i >= total) break;
      Pack8 p;
      p.u = v[u];
      if (bias && r < valid) add_bias_lowp8(p, bv);
      *(uint4*)(dst + r * ATT_LD + c8 * 8) = p.u;
    }
  }
}

// A row's 64 values are held 8 to a lane by 8 consecutive lanes. Every Ds below is
// row_sum8(lane_dot8(dO chunk, o chunk)), in this one order, so the kernels that compute D
// differently (loaded with dO, or from landed tiles) agree bit for bit.
__device__ __forceinline__ float lane_dot8(const Pack8& a, const Pack8& b) {
  float dot = 0.f;
#pragma unroll
  for (int j = 0; j < 8; j++) dot += lowp_to_float(a.h[j]) * lowp_to_float(b.h[j]);
  return dot;
}

// The sum of v over the 8 consecutive lanes that share a row (the shuffles stay inside them).
__device__ __forceinline__ float row_sum8(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v + __shfl_xor_sync(0xffffffffu, v, 4);
}

// dO tile (as load_tile, no bias) plus Ds[r] = sum_j dO[r, j] * o[r, j] (0 for rows >= valid).
// rows * 8 must be a multiple of blockDim.x (8 consecutive threads share a row, and every
// thread runs the same iterations: the shuffles are uniform).
#define GRAD_UNROLL 4
__device__ __forceinline__ void load_grad_tile(lowp* dst, float* Ds, const lowp* __restrict__ dO, long long dRow0,
                                               const lowp* __restrict__ o, long long oRow0, int ld, int col, int rows,
                                               int valid) {
  const int c8 = threadIdx.x & 7, total = rows * 8;
  for (int base = threadIdx.x; base < total; base += GRAD_UNROLL * blockDim.x) {
    uint4 pv[GRAD_UNROLL], qv[GRAD_UNROLL];
#pragma unroll
    for (int u = 0; u < GRAD_UNROLL; u++) {
      const int i = base + u * blockDim.x, r = i >> 3;
      const bool ok = i < total && r < valid;
      pv[u] = ok ? *(const uint4*)(dO + (dRow0 + r) * ld + col + c8 * 8) : make_uint4(0u, 0u, 0u, 0u);
      qv[u] = ok ? *(const uint4*)(o + (oRow0 + r) * ld + col + c8 * 8) : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int u = 0; u < GRAD_UNROLL; u++) {
      const int i = base + u * blockDim.x, r = i >> 3;
      if (base + u * (int)blockDim.x - (int)threadIdx.x >= total) break;  // uniform over the block
      Pack8 p, q;
      p.u = pv[u];
      q.u = qv[u];
      float dot = lane_dot8(p, q);
      *(uint4*)(dst + r * ATT_LD + c8 * 8) = p.u;
      dot = row_sum8(dot);
      if (c8 == 0) Ds[r] = dot;
    }
  }
}

// cp.async versions for the kernels that load whole tiles up front: every 16-byte copy of every
// tile is in flight at once (no registers held), instead of a few per thread per round trip.
// Rows >= valid are zero-filled (a source size of 0 reads nothing).
__device__ __forceinline__ void cp_async16(lowp* dst, const lowp* src, bool copy) {
  const uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(copy ? 16 : 0));
}

__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::); }
// Groups of copies: commit closes one; wait<n> returns once at most n of this thread's newest are pending.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
}

// Starts copying rows [0, rows) of a [rows][ATT_LD] tile from src rows row0.. (ld apart), column col.
__device__ __forceinline__ void load_tile_async(lowp* dst, const lowp* __restrict__ src, long long row0, int ld,
                                                int col, int rows, int valid) {
  for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
    const int r = i >> 3, c8 = i & 7;
    const bool copy = r < valid;
    cp_async16(dst + r * ATT_LD + c8 * 8, src + (row0 + (copy ? r : 0)) * ld + col + c8 * 8, copy);
  }
}

// Once the copies landed: bias (fp32, offset to the tile's column) added to rows < valid, rounded
// to bf16: the values load_tile gives.
__device__ __forceinline__ void add_bias_tile(lowp* tile, const float* __restrict__ bias, int valid) {
  const int c8 = threadIdx.x & 7;
  float bv[8];
#pragma unroll
  for (int j = 0; j < 8; j++) bv[j] = bias[c8 * 8 + j];
  for (int i = threadIdx.x; i < valid * 8; i += blockDim.x) {
    Pack8 p;
    p.u = *(uint4*)(tile + (i >> 3) * ATT_LD + c8 * 8);
    add_bias_lowp8(p, bv);
    *(uint4*)(tile + (i >> 3) * ATT_LD + c8 * 8) = p.u;
  }
}

// Ds[r] = sum_j a[r, j] * b[r, j] over two landed [rows][ATT_LD] tiles (rows * 8 a multiple of
// blockDim.x: the shuffles are uniform).
__device__ __forceinline__ void row_dots(float* Ds, const lowp* a, const lowp* b, int rows) {
  const int c8 = threadIdx.x & 7;
  for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
    Pack8 p, q;
    p.u = *(const uint4*)(a + (i >> 3) * ATT_LD + c8 * 8);
    q.u = *(const uint4*)(b + (i >> 3) * ATT_LD + c8 * 8);
    const float dot = row_sum8(lane_dot8(p, q));
    if (c8 == 0) Ds[i >> 3] = dot;
  }
}

// acc[NT n-tiles of 8 columns][4] += A (16 x 64, fragments af) times rows n0.. n0 + 8 NT - 1 of a
// [rows][ATT_LD] tile taken as B^T (S = Q K^T, dP = dO V^T). The n-tiles are the inner loop: NT
// independent MMAs in a row instead of chains of dependent ones (each accumulator still sums its
// k steps in the same order: the same bits).
template <int NT>
__device__ __forceinline__ void mma_rows_t(float (&acc)[NT][4], const uint32_t (&af)[4][4], const lowp* tile, int n0,
                                           int lane) {
#pragma unroll
  for (int kp = 0; kp < 2; kp++) {
    uint32_t b[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
      ldsm_x4(b[nt], tile + (n0 + nt * 8 + (lane & 7)) * ATT_LD + kp * 32 + (lane >> 3) * 8);
#pragma unroll
    for (int nt = 0; nt < NT; nt++) mma16816(acc[nt], af[2 * kp], b[nt][0], b[nt][1]);
#pragma unroll
    for (int nt = 0; nt < NT; nt++) mma16816(acc[nt], af[2 * kp + 1], b[nt][2], b[nt][3]);
  }
}

// acc[8 n-tiles over the 64 columns][4] += A (16 x 16, fragment a) times tile rows k0 .. k0 + 15
// (P V, dS K, P^T dO, dS^T Q).
__device__ __forceinline__ void mma_tile(float (&acc)[8][4], const uint32_t (&a)[4], const lowp* tile, int k0,
                                         int lane) {
#pragma unroll
  for (int dp = 0; dp < 4; dp++) {
    uint32_t b[4];
    ldsm_x4_t(b, tile + (k0 + (lane & 15)) * ATT_LD + dp * 16 + (lane >> 4) * 8);
    mma16816(acc[2 * dp], a, b[0], b[1]);
    mma16816(acc[2 * dp + 1], a, b[2], b[3]);
  }
}

__device__ __forceinline__ void load_a_frags(uint32_t (&f)[4][4], const lowp* tile, int row0, int lane) {
#pragma unroll
  for (int ks = 0; ks < 4; ks++) ldsm_x4(f[ks], tile + (row0 + (lane & 15)) * ATT_LD + ks * 16 + (lane >> 4) * 8);
}

// Writes a warp's 16 x 64 accumulator (times mul) as bf16 into rows row0 + (0..15) < valid.
__device__ __forceinline__ void store_rows(lowp* __restrict__ dst, long long row0, int ld, int col,
                                           const float (&acc)[8][4], float mul0, float mul1, int valid, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int nt = 0; nt < 8; nt++) {
    const int c = col + nt * 8 + 2 * t;
    if (g < valid)
      *(lowp2*)(dst + (row0 + g) * ld + c) = to_lowp2(acc[nt][0] * mul0, acc[nt][1] * mul0);
    if (g + 8 < valid)
      *(lowp2*)(dst + (row0 + g + 8) * ld + c) =
          to_lowp2(acc[nt][2] * mul1, acc[nt][3] * mul1);
  }
}

// One 16-query step of the dk/dv pass for a warp's 16 keys (fragments kf, vf): P^T and
// dS^T = P^T * (dP^T - D) for queries qc .. qc + 15 (A fragments pa, da, also returned for dq),
// then dv += P^T dO and dk += dS^T Q. Keys past N (key0 / key1 false for rows g / g + 8) get P = 0.
__device__ __forceinline__ void dkdv_step(float (&dk)[8][4], float (&dv)[8][4], uint32_t (&pa)[4],
                                          uint32_t (&da)[4], const uint32_t (&kf)[4][4],
                                          const uint32_t (&vf)[4][4], const lowp* Qs, const lowp* dOs,
                                          const float* Ls, const float* Ds, int qc, bool key0, bool key1,
                                          float scaleLog2, int lane) {
  const int t = lane & 3;
  float st[2][4], dpt[2][4];
#pragma unroll
  for (int i = 0; i < 2; i++) {
    st[i][0] = st[i][1] = st[i][2] = st[i][3] = 0.f;
    dpt[i][0] = dpt[i][1] = dpt[i][2] = dpt[i][3] = 0.f;
  }
  // four independent accumulators (S^T and dP^T, two n-tiles each) per round, k steps in order
#pragma unroll
  for (int kp = 0; kp < 2; kp++) {
    uint32_t bq[2][4], bd[2][4];
#pragma unroll
    for (int nt = 0; nt < 2; nt++) {
      ldsm_x4(bq[nt], Qs + (qc + nt * 8 + (lane & 7)) * ATT_LD + kp * 32 + (lane >> 3) * 8);
      ldsm_x4(bd[nt], dOs + (qc + nt * 8 + (lane & 7)) * ATT_LD + kp * 32 + (lane >> 3) * 8);
    }
#pragma unroll
    for (int half = 0; half < 2; half++)
#pragma unroll
      for (int nt = 0; nt < 2; nt++) {
        mma16816(st[nt], kf[2 * kp + half], bq[nt][2 * half], bq[nt][2 * half + 1]);
        mma16816(dpt[nt], vf[2 * kp + half], bd[nt][2 * half], bd[nt][2 * half + 1]);
      }
  }
#pragma unroll
  for (int nt = 0; nt < 2; nt++)
#pragma unroll
    for (int c = 0; c < 4; c++) {
      const int q = qc + nt * 8 + 2 * t + (c & 1);
      const float p = (c < 2 ? key0 : key1) ? fast_exp2(st[nt][c] * scaleLog2 - Ls[q]) : 0.f;
      st[nt][c] = p;
      dpt[nt][c] = p * (dpt[nt][c] - Ds[q]);
    }
  c_to_a(pa, st[0], st[1]);
  c_to_a(da, dpt[0], dpt[1]);
  mma_tile(dv, pa, dOs, qc, lane);
  mma_tile(dk, da, Qs, qc, lane);
}

// One chunk of Keys (32, or 16 for a last chunk of at most 16 keys) kc.. of a warp's online
// softmax: S = Q K^T for the chunk, the running maxima m and sums l rescaled, P V added into oc.
// Masked: keys past N count as -infinity (only the last chunk has any, so the others skip the
// compares). A 16-key last chunk gives the 32-key one's bits: the keys it leaves out are masked,
// so they add 0 to every sum and product.
template <bool Masked, int Keys = 32>
__device__ __forceinline__ void attn_fwd_chunk(float (&oc)[8][4], float& m0, float& m1, float& l0, float& l1,
                                               const uint32_t (&qf)[4][4], const lowp* Ks, const lowp* Vs, int kc,
                                               int N, float scaleLog2, int lane) {
  constexpr int NT = Keys / 8;
  const int t = lane & 3;
  float s[NT][4];
#pragma unroll
  for (int i = 0; i < NT; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
  mma_rows_t(s, qf, Ks, kc, lane);
  float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int c = 0; c < 4; c++) {
      const float v = !Masked || kc + nt * 8 + 2 * t + (c & 1) < N ? s[nt][c] * scaleLog2 : -INFINITY;
      s[nt][c] = v;
      if (c < 2) mx0 = fmaxf(mx0, v);
      else mx1 = fmaxf(mx1, v);
    }
  const float mn0 = fmaxf(m0, quad_max(mx0)), mn1 = fmaxf(m1, quad_max(mx1));
  const float a0 = fast_exp2(m0 - mn0), a1 = fast_exp2(m1 - mn1);
  m0 = mn0;
  m1 = mn1;
  l0 *= a0;
  l1 *= a1;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    oc[i][0] *= a0;
    oc[i][1] *= a0;
    oc[i][2] *= a1;
    oc[i][3] *= a1;
  }
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int c = 0; c < 4; c++) {
      const float p = fast_exp2(s[nt][c] - (c < 2 ? m0 : m1));
      s[nt][c] = p;
      if (c < 2) l0 += p;
      else l1 += p;
    }
#pragma unroll
  for (int j = 0; j < NT / 2; j++) {
    uint32_t pa[4];
    c_to_a(pa, s[2 * j], s[2 * j + 1]);
    mma_tile(oc, pa, Vs, kc + 16 * j, lane);
  }
}

// One warp's 16 query rows qw.. (its rows of the Qs tile from qs) of (image b = row0 / N, head h)
// against the Np = roundup(N, 32) keys of the Ks, Vs tiles: o rows and lse (when lse is given).
__device__ __forceinline__ void attn_fwd_warp(const lowp* Qs, const lowp* Ks, const lowp* Vs, int qs, int qw,
                                              long long row0, int bh, int h, lowp* __restrict__ o,
                                              float* __restrict__ lse, int N, int D, float scaleLog2) {
  const int lane = threadIdx.x & 31, t = lane & 3, g = lane >> 2;
  uint32_t qf[4][4];
  load_a_frags(qf, Qs, qs, lane);
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  float oc[8][4];
#pragma unroll
  for (int i = 0; i < 8; i++) oc[i][0] = oc[i][1] = oc[i][2] = oc[i][3] = 0.f;
  int kc = 0;
  for (; kc + 32 <= N; kc += 32) attn_fwd_chunk<false>(oc, m0, m1, l0, l1, qf, Ks, Vs, kc, N, scaleLog2, lane);
  if (N - kc > 16) attn_fwd_chunk<true>(oc, m0, m1, l0, l1, qf, Ks, Vs, kc, N, scaleLog2, lane);
  else if (kc < N) attn_fwd_chunk<true, 16>(oc, m0, m1, l0, l1, qf, Ks, Vs, kc, N, scaleLog2, lane);
  l0 = quad_sum(l0);
  l1 = quad_sum(l1);
  store_rows(o, row0 + qw, D, h * 64, oc, 1.f / l0, 1.f / l1, N - qw, lane);
  if (lse && t == 0) {
    if (qw + g < N) lse[(long long)bh * N + qw + g] = m0 + log2f(l0);
    if (qw + g + 8 < N) lse[(long long)bh * N + qw + g + 8] = m1 + log2f(l1);
  }
}

template <int W>
__device__ __forceinline__ void attn_fwd_body(const lowp* __restrict__ qkv, const float* __restrict__ bias,
                                              lowp* __restrict__ o, float* __restrict__ lse, int N, int H,
                                              float scaleLog2) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int Np = (N + 31) & ~31;
  lowp* Ks = (lowp*)smem;
  lowp* Vs = Ks + Np * ATT_LD;
  lowp* Qs = Vs + Np * ATT_LD;
  const int bh = blockIdx.y, b = bh / H, h = bh % H, D = H * 64, ld = 3 * D;
  const int q0 = blockIdx.x * 16 * W;
  const long long row0 = (long long)b * N;
  load_tile(Qs, qkv, row0 + q0, ld, h * 64, bias_at(bias, h * 64), 16 * W, min(16 * W, N - q0));
  load_tile(Ks, qkv, row0, ld, D + h * 64, bias_at(bias, D + h * 64), Np, N);
  load_tile(Vs, qkv, row0, ld, 2 * D + h * 64, bias_at(bias, 2 * D + h * 64), Np, N);
  __syncthreads();
  const int warp = threadIdx.x >> 5;
  const int qw = q0 + warp * 16;
  if (qw >= N) return;
  attn_fwd_warp(Qs, Ks, Vs, warp * 16, qw, row0, bh, h, o, lse, N, D, scaleLog2);
}

// The loop of a persistent block over (image, head) pairs blockIdx.x, + gridDim.x, ... < pairs,
// with two stages of shared tiles: issue(pair, stage) starts the pair's copies (one cp.async
// group); once they landed, every thread runs ready(pair, stage) (e.g. adding the bias; skipped with
// its barrier where hasReady is false, the same for the whole grid), then compute(pair, stage),
// between barriers. The next pair's copies are in flight while this one computes, so no SM waits
// for its tiles between pairs.
template <typename Issue, typename Ready, typename Compute>
__device__ __forceinline__ void for_each_pair_double_buffered(int pairs, Issue issue, bool hasReady, Ready ready,
                                                              Compute compute) {
  int pair = blockIdx.x;
  if (pair >= pairs) return;
  issue(pair, 0);
  for (int it = 0; pair < pairs; it++, pair += gridDim.x) {
    const int st = it & 1;
    if (pair + (int)gridDim.x < pairs) {
      issue(pair + gridDim.x, st ^ 1);  // its stage was last read before the previous __syncthreads
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (hasReady) {
      ready(pair, st);
      __syncthreads();
    }
    compute(pair, st);
    __syncthreads();  // every thread is done with this stage before the copies into it are issued
  }
}

// attn_fwd_pipe: persistent blocks, each taking (image, head) pairs blockIdx.x, + gridDim.x, ...
// of the B * H `pairs`, one warp per 16 queries (block 32 * roundup(N, 16) / 16 threads, N <= 256),
// over two stages of shared tiles: the next pair's q, k, v copies (cp.async) are in flight while
// this pair computes, so no SM waits for its tiles between pairs (attn_fwd16 loads, then computes,
// with one block an SM). Per row the same sequence as attn_fwd_body: bit-identical outputs.
// Dynamic shared 2 * (roundup(N, 16) + 2 * roundup(N, 32)) * ATT_LD * 2 bytes.
extern "C" __global__ void __launch_bounds__(512, 1)
    attn_fwd_pipe(const lowp* __restrict__ qkv, const float* __restrict__ bias, lowp* __restrict__ o,
                  float* __restrict__ lse, int N, int H, float scaleLog2, int pairs) {
  extern __shared__ __align__(16) unsigned char pipe_smem[];
  const int Np = (N + 31) & ~31, Nq = (N + 15) & ~15, D = H * 64, ld = 3 * D;
  const int stage = (Nq + 2 * Np) * ATT_LD;
  const auto tiles = [&](int st, int k) { return (lowp*)pipe_smem + st * stage + (k == 0 ? 0 : Nq + (k - 1) * Np) * ATT_LD; };
  const auto issue = [&](int pair, int st) {
    const long long row0 = (long long)(pair / H) * N;
    const int h = pair % H;
    load_tile_async(tiles(st, 0), qkv, row0, ld, h * 64, Nq, N);
    load_tile_async(tiles(st, 1), qkv, row0, ld, D + h * 64, Np, N);
    load_tile_async(tiles(st, 2), qkv, row0, ld, 2 * D + h * 64, Np, N);
    cp_async_commit();
  };
  const int warp = threadIdx.x >> 5;
  for_each_pair_double_buffered(
      pairs, issue, bias != nullptr,
      [&](int pair, int st) {
#pragma unroll
        for (int k = 0; k < 3; k++) add_bias_tile(tiles(st, k), bias + k * D + (pair % H) * 64, N);
      },
      [&](int pair, int st) {
        if (warp * 16 < N)
          attn_fwd_warp(tiles(st, 0), tiles(st, 1), tiles(st, 2), warp * 16, warp * 16, (long long)(pair / H) * N,
                        pair, pair % H, o, lse, N, D, scaleLog2);
      });
}

// attn_bwd_dq: grid (ceil(N / 16W), B * H, S); dynamic shared (2 * roundup(N, 32) + 32W) * ATT_LD * 2
// + 64W bytes.
template <int W>
__device__ __forceinline__ void attn_bwd_dq_body(const lowp* __restrict__ qkv, const float* __restrict__ bias,
                                                 const lowp* __restrict__ o,
                                                 const lowp* __restrict__ dO,  // [S * R, D]
                                                 const float* __restrict__ lse,
                                                 lowp* __restrict__ dqkv,  // [S * R, 3D]
                                                 int N, int H, int R, float scaleLog2, float scale) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int Np = (N + 31) & ~31;
  lowp* Ks = (lowp*)smem;
  lowp* Vs = Ks + Np * ATT_LD;
  lowp* Qs = Vs + Np * ATT_LD;
  lowp* dOs = Qs + 16 * W * ATT_LD;
  float* Ds = (float*)(dOs + 16 * W * ATT_LD);
  const int bh = blockIdx.y, b = bh / H, h = bh % H, D = H * 64, ld = 3 * D, sig = blockIdx.z;
  const int q0 = blockIdx.x * 16 * W;
  const long long row0 = (long long)b * N;
  const int valid = min(16 * W, N - q0);
  load_tile(Qs, qkv, row0 + q0, ld, h * 64, bias_at(bias, h * 64), 16 * W, valid);
  load_tile(Ks, qkv, row0, ld, D + h * 64, bias_at(bias, D + h * 64), Np, N);
  load_tile(Vs, qkv, row0, ld, 2 * D + h * 64, bias_at(bias, 2 * D + h * 64), Np, N);
  load_grad_tile(dOs, Ds, dO, (long long)sig * R + row0 + q0, o, row0 + q0, D, h * 64, 16 * W, valid);
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t = lane & 3, g = lane >> 2;
  const int qw = q0 + warp * 16;
  if (qw >= N) return;
  uint32_t qf[4][4], df[4][4];
  load_a_frags(qf, Qs, warp * 16, lane);
  load_a_frags(df, dOs, warp * 16, lane);
  const float L0 = qw + g < N ? lse[(long long)bh * N + qw + g] : 0.f;
  const float L1 = qw + g + 8 < N ? lse[(long long)bh * N + qw + g + 8] : 0.f;
  const float D0 = Ds[warp * 16 + g], D1 = Ds[warp * 16 + g + 8];
  float dq[8][4];
#pragma unroll
  for (int i = 0; i < 8; i++) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
  for (int kc = 0; kc < Np; kc += 32) {
    float s[4][4], dp[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
      dp[i][0] = dp[i][1] = dp[i][2] = dp[i][3] = 0.f;
    }
    mma_rows_t(s, qf, Ks, kc, lane);
    mma_rows_t(dp, df, Vs, kc, lane);
#pragma unroll
    for (int nt = 0; nt < 4; nt++)
#pragma unroll
      for (int c = 0; c < 4; c++) {
        const int key = kc + nt * 8 + 2 * t + (c & 1);
        const float p = key < N ? fast_exp2(s[nt][c] * scaleLog2 - (c < 2 ? L0 : L1)) : 0.f;
        s[nt][c] = p * (dp[nt][c] - (c < 2 ? D0 : D1));
      }
#pragma unroll
    for (int j = 0; j < 2; j++) {
      uint32_t a[4];
      c_to_a(a, s[2 * j], s[2 * j + 1]);
      mma_tile(dq, a, Ks, kc + 16 * j, lane);
    }
  }
  store_rows(dqkv, (long long)sig * R + row0 + qw, ld, h * 64, dq, scale, scale, N - qw, lane);
}

// attn_bwd_dkdv: grid (ceil(N / 16W), B * H, S); with Nl = roundup(N, 4W) query rows loaded, dynamic
// shared (2 * Nl + 32W) * ATT_LD * 2 + 8 * Nl bytes (rows past N are zero, their lse infinite).
template <int W>
__device__ __forceinline__ void attn_bwd_dkdv_body(const lowp* __restrict__ qkv, const float* __restrict__ bias,
                                                   const lowp* __restrict__ o, const lowp* __restrict__ dO,
                                                   const float* __restrict__ lse, lowp* __restrict__ dqkv, int N,
                                                   int H, int R, float scaleLog2, float scale) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int Nq = (N + 15) & ~15;  // queries visited, 16 at a time
  const int Nl = (N + 4 * W - 1) / (4 * W) * (4 * W);  // rows loaded: 8 Nl a multiple of the block
  lowp* Qs = (lowp*)smem;
  lowp* dOs = Qs + Nl * ATT_LD;
  lowp* Ks = dOs + Nl * ATT_LD;
  lowp* Vs = Ks + 16 * W * ATT_LD;
  float* Ls = (float*)(Vs + 16 * W * ATT_LD);
  float* Ds = Ls + Nl;
  const int bh = blockIdx.y, b = bh / H, h = bh % H, D = H * 64, ld = 3 * D, sig = blockIdx.z;
  const int k0 = blockIdx.x * 16 * W;
  const long long row0 = (long long)b * N;
  const int valid = min(16 * W, N - k0);
  load_tile(Qs, qkv, row0, ld, h * 64, bias_at(bias, h * 64), Nl, N);
  load_grad_tile(dOs, Ds, dO, (long long)sig * R + row0, o, row0, D, h * 64, Nl, N);
  load_tile(Ks, qkv, row0 + k0, ld, D + h * 64, bias_at(bias, D + h * 64), 16 * W, valid);
  load_tile(Vs, qkv, row0 + k0, ld, 2 * D + h * 64, bias_at(bias, 2 * D + h * 64), 16 * W, valid);
  for (int i = threadIdx.x; i < Nl; i += blockDim.x) Ls[i] = i < N ? lse[(long long)bh * N + i] : INFINITY;
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int kw = k0 + warp * 16;
  if (kw >= N) return;
  uint32_t kf[4][4], vf[4][4];
  load_a_frags(kf, Ks, warp * 16, lane);
  load_a_frags(vf, Vs, warp * 16, lane);
  float dk[8][4], dv[8][4];
#pragma unroll
  for (int i = 0; i < 8; i++) {
    dk[i][0] = dk[i][1] = dk[i][2] = dk[i][3] = 0.f;
    dv[i][0] = dv[i][1] = dv[i][2] = dv[i][3] = 0.f;
  }
  const int g = lane >> 2;
  const bool key0 = kw + g < N, key1 = kw + g + 8 < N;
  for (int qc = 0; qc < Nq; qc += 16) {
    uint32_t pa[4], da[4];
    dkdv_step(dk, dv, pa, da, kf, vf, Qs, dOs, Ls, Ds, qc, key0, key1, scaleLog2, lane);
  }
  const long long out0 = (long long)sig * R + row0 + kw;
  store_rows(dqkv, out0, ld, D + h * 64, dk, scale, scale, N - kw, lane);
  store_rows(dqkv, out0, ld, 2 * D + h * 64, dv, 1.f, 1.f, N - kw, lane);
}

#define ATT_FWD_ARGS                                                                                  \
  const lowp *__restrict__ qkv, const float *__restrict__ bias, lowp *__restrict__ o, float *__restrict__ lse, \
      int N, int H, float scaleLog2
#define ATT_BWD_ARGS                                                                                  \
  const lowp *__restrict__ qkv, const float *__restrict__ bias, const lowp *__restrict__ o,             \
      const lowp *__restrict__ dO, const float *__restrict__ lse, lowp *__restrict__ dqkv, int N, int H, int R, \
      float scaleLog2, float scale

extern "C" __global__ void __launch_bounds__(128) attn_fwd(ATT_FWD_ARGS) {
  attn_fwd_body<4>(qkv, bias, o, lse, N, H, scaleLog2);
}
extern "C" __global__ void __launch_bounds__(128) attn_bwd_dq(ATT_BWD_ARGS) {
  attn_bwd_dq_body<4>(qkv, bias, o, dO, lse, dqkv, N, H, R, scaleLog2, scale);
}
extern "C" __global__ void __launch_bounds__(128) attn_bwd_dkdv(ATT_BWD_ARGS) {
  attn_bwd_dkdv_body<4>(qkv, bias, o, dO, lse, dqkv, N, H, R, scaleLog2, scale);
}
extern "C" __global__ void __launch_bounds__(256, 2) attn_fwd8(ATT_FWD_ARGS) {
  attn_fwd_body<8>(qkv, bias, o, lse, N, H, scaleLog2);
}
extern "C" __global__ void __launch_bounds__(256, 2) attn_bwd_dq8(ATT_BWD_ARGS) {
  attn_bwd_dq_body<8>(qkv, bias, o, dO, lse, dqkv, N, H, R, scaleLog2, scale);
}
extern "C" __global__ void __launch_bounds__(256, 2) attn_bwd_dkdv8(ATT_BWD_ARGS) {
  attn_bwd_dkdv_body<8>(qkv, bias, o, dO, lse, dqkv, N, H, R, scaleLog2, scale);
}
// One block for all the queries of an (image, head): K and V are loaded once instead of once per
// 128 queries. 16 warps of at most 128 registers; warps past the last query exit at once.
extern "C" __global__ void __launch_bounds__(512, 1) attn_fwd16(ATT_FWD_ARGS) {
  attn_fwd_body<16>(qkv, bias, o, lse, N, H, scaleLog2);
}

// Ds[r] = sum_j dO[r, j] * o[r, j] with dO rows read from global memory (dRow0.., ld D, column col;
// zero past `valid`) against a landed o tile: row_dots' values, without the dO tile.
__device__ __forceinline__ void row_dots_global(float* Ds, const lowp* __restrict__ dO, long long dRow0, int ld,
                                                int col, const lowp* o, int rows, int valid) {
  const int c8 = threadIdx.x & 7;
  for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
    const int r = i >> 3;
    Pack8 p, q;
    p.u = r < valid ? *(const uint4*)(dO + (dRow0 + r) * ld + col + c8 * 8) : make_uint4(0u, 0u, 0u, 0u);
    q.u = *(const uint4*)(o + r * ATT_LD + c8 * 8);
    const float dot = row_sum8(lane_dot8(p, q));
    if (c8 == 0) Ds[r] = dot;
  }
}

// attn_bwd_fused: grid (B * H), block 32 * Nq / 16 threads (Nq = roundup(N, 16) <= 208: one warp
// per 16 rows), all S signals of an (image, head) in one block: q, k, v and o are loaded (and the
// bias added) once for them all. Dynamic shared 4 * Nq * ATT_LD * 2 + Nq * max(Nq + 8, ATT_LD) * 2 +
// 4 * Nq * (1 + S) bytes. Per signal: the dk/dv pass (keys per warp), which leaves dS^T in shared
// memory, then dq = scale * dS k from it (queries per warp); the next signal's dO tile loads during
// this one's dq pass. dk and dv are bit-identical to attn_bwd_dkdv's (the same per-warp sequence,
// keys past N masked); dq sums the same bf16 dS values over the keys in 16-key steps, in the order
// attn_bwd_dq does. One block an SM (210 KB of shared memory at N = 197, S = 2). 13 warps put 4 on
// one of the SM's four schedulers, whose quarter of the register file then allows 128 registers a
// thread (a few bytes spill).
__device__ __forceinline__ void attn_bwd_fused_body(ATT_BWD_ARGS, int S) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int Nq = (N + 15) & ~15, LDS = Nq + 8;  // dS^T row stride: an odd number of 16-byte units
  lowp* Qs = (lowp*)smem;
  lowp* Ks = Qs + Nq * ATT_LD;
  lowp* Vs = Ks + Nq * ATT_LD;
  lowp* dOs = Vs + Nq * ATT_LD;
  lowp* dSt = dOs + Nq * ATT_LD;  // [key][query]; o's tile before that
  float* Ls = (float*)(dSt + Nq * max(LDS, ATT_LD));
  float* DsAll = Ls + Nq;  // [S][Nq]
  const int bh = blockIdx.x, b = bh / H, h = bh % H, D = H * 64, ld = 3 * D;
  const long long row0 = (long long)b * N;
  load_tile_async(Qs, qkv, row0, ld, h * 64, Nq, N);
  load_tile_async(Ks, qkv, row0, ld, D + h * 64, Nq, N);
  load_tile_async(Vs, qkv, row0, ld, 2 * D + h * 64, Nq, N);
  load_tile_async(dOs, dO, row0, D, h * 64, Nq, N);
  load_tile_async(dSt, o, row0, D, h * 64, Nq, N);
  for (int i = threadIdx.x; i < Nq; i += blockDim.x) Ls[i] = i < N ? lse[(long long)bh * N + i] : INFINITY;
  cp_async_wait_all();
  __syncthreads();
  if (bias) {
    add_bias_tile(Qs, bias + h * 64, N);
    add_bias_tile(Ks, bias + D + h * 64, N);
    add_bias_tile(Vs, bias + 2 * D + h * 64, N);
  }
  row_dots(DsAll, dOs, dSt, Nq);
  for (int sig = 1; sig < S; sig++) row_dots_global(DsAll + sig * Nq, dO, (long long)sig * R + row0, D, h * 64, dSt, Nq, N);
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t = lane & 3, g = lane >> 2;
  const int r0 = warp * 16;  // this warp's keys in pass 1, its queries in pass 2
  for (int sig = 0; sig < S; sig++) {
    const float* Ds = DsAll + sig * Nq;
    const long long out0 = (long long)sig * R + row0 + r0;
    {
      uint32_t kf[4][4], vf[4][4];
      load_a_frags(kf, Ks, r0, lane);
      load_a_frags(vf, Vs, r0, lane);
      const bool key0 = r0 + g < N, key1 = r0 + g + 8 < N;
      float dk[8][4], dv[8][4];
#pragma unroll
      for (int i = 0; i < 8; i++) {
        dk[i][0] = dk[i][1] = dk[i][2] = dk[i][3] = 0.f;
        dv[i][0] = dv[i][1] = dv[i][2] = dv[i][3] = 0.f;
      }
      for (int qc = 0; qc < Nq; qc += 16) {
        uint32_t pa[4], da[4];
        dkdv_step(dk, dv, pa, da, kf, vf, Qs, dOs, Ls, Ds, qc, key0, key1, scaleLog2, lane);
        // da is dS^T for keys r0 + g (+ 8), queries qc + 2t (+ 1) (+ 8): 4-byte stores, no conflicts
        *(uint32_t*)(dSt + (r0 + g) * LDS + qc + 2 * t) = da[0];
        *(uint32_t*)(dSt + (r0 + g + 8) * LDS + qc + 2 * t) = da[1];
        *(uint32_t*)(dSt + (r0 + g) * LDS + qc + 8 + 2 * t) = da[2];
        *(uint32_t*)(dSt + (r0 + g + 8) * LDS + qc + 8 + 2 * t) = da[3];
      }
      // r0 < N for every warp: Nq - 16 < N
      store_rows(dqkv, out0, ld, D + h * 64, dk, scale, scale, N - r0, lane);
      store_rows(dqkv, out0, ld, 2 * D + h * 64, dv, 1.f, 1.f, N - r0, lane);
    }
    __syncthreads();
    // the dO tile is free (the dq pass reads dS^T and k): the next signal's starts loading
    if (sig + 1 < S) load_tile_async(dOs, dO, (long long)(sig + 1) * R + row0, D, h * 64, Nq, N);
    // dq rows r0..r0 + 15: A = dS (queries x keys) read transposed out of dS^T by ldmatrix.trans
    float dq[8][4];
#pragma unroll
    for (int i = 0; i < 8; i++) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
    for (int kc = 0; kc < Nq; kc += 16) {
      uint32_t a[4];
      ldsm_x4_t(a, dSt + (kc + (lane & 7) + ((lane >> 4) << 3)) * LDS + r0 + ((lane >> 3) & 1) * 8);
      mma_tile(dq, a, Ks, kc, lane);
    }
    store_rows(dqkv, out0, ld, h * 64, dq, scale, scale, N - r0, lane);
    cp_async_wait_all();
    __syncthreads();  // dS^T read and the next dO landed before the next signal's pass 1
  }
}
extern "C" __global__ void __launch_bounds__(416, 1) attn_bwd_fused(ATT_BWD_ARGS, int S) {
  attn_bwd_fused_body(qkv, bias, o, dO, lse, dqkv, N, H, R, scaleLog2, scale, S);
}
