// Attention for the class token's query alone, in the last block. The head reads the class token
// only, so the last block's other query rows feed nothing (their keys and values still do): the
// engine runs the last block's attention for one query per (image, head), and its out_proj, LN2
// and MLP on B rows instead of B * N.
//
// One warp per (image, head), per signal in the backward; N keys of 64 values on CUDA cores (a
// lane per key for the dot products, a lane per 2 columns for the sums over keys). Roundings are
// those of attn_fwd_pipe / attn_bwd_fused: q, k, v are bf16(qkv + bias), scores are fp32 sums of
// their products, P and dS are rounded to bf16 where they enter a product, o = sum(P v) / l and
// lse2 = m + log2 l. The sums run in another order than the MMAs', so the values agree with those
// kernels' class rows to rounding, not bit for bit.
//
//   attn_cls_fwd  o [B, D] (row b: image b's class token), lse [B * H] (or null)
//   attn_cls_bwd  dO [S * B, D] (class rows, signal-major) against o and lse -> dqkv [S * R, 3D]:
//                 dk and dv for every row of the image, dq for its class row (the other rows' dq
//                 are not written: they are zero, and the engine's GEMMs read the class rows').
// Both: grid ceil(pairs / CLS_WARPS), block 32 * CLS_WARPS; N <= CLS_MAX_TOKENS.
#define CLS_WARPS 4
#define CLS_MAX_TOKENS 704

// bf16(v + bias) of the 2 consecutive values at p (bias: their 2 fp32 biases)
__device__ __forceinline__ float2 load2_bias(const lowp* __restrict__ p, float2 bias) {
  const lowp2 v = *(const lowp2*)p;
  return make_float2(round_lowp(__low2float(v) + bias.x), round_lowp(__high2float(v) + bias.y));
}

// sum_d bf16(row[d] + bias[d]) * x[d] over 64 values (bias and x in shared memory)
__device__ __forceinline__ float dot64_bias(const lowp* __restrict__ row, const float* bias, const float* x) {
  float acc = 0.f;
#pragma unroll
  for (int c = 0; c < 8; c++) {
    Pack8 p;
    p.u = *(const uint4*)(row + c * 8);
#pragma unroll
    for (int j = 0; j < 8; j++) acc += round_lowp(lowp_to_float(p.h[j]) + bias[c * 8 + j]) * x[c * 8 + j];
  }
  return acc;
}

// A warp's shared rows: 64 values of the query (and dO), the key and value biases, one value per key.
struct ClsWarpShared {
  float q[64], g[64], kb[64], vb[64];
  float p[CLS_MAX_TOKENS], ds[CLS_MAX_TOKENS];
};

// Fills q (bf16(q + bias), class row of image b, head h) and the key and value biases of head h.
__device__ __forceinline__ void cls_load_query(ClsWarpShared& sh, const lowp* __restrict__ base,
                                               const float* __restrict__ bias, int D, int h, int lane) {
  const int d = 2 * lane;
  // no bias (the in_proj GEMM added it): zeros, and bf16(x + 0) = x keeps the loaded values
  const auto b = [&](int i) { return bias ? bias[i] : 0.f; };
  const float2 q = load2_bias(base + d, make_float2(b(h * 64 + d), b(h * 64 + d + 1)));
  sh.q[d] = q.x;
  sh.q[d + 1] = q.y;
  sh.kb[d] = b(D + h * 64 + d);
  sh.kb[d + 1] = b(D + h * 64 + d + 1);
  sh.vb[d] = b(2 * D + h * 64 + d);
  sh.vb[d + 1] = b(2 * D + h * 64 + d + 1);
  __syncwarp();
}

extern "C" __global__ void __launch_bounds__(32 * CLS_WARPS)
    attn_cls_fwd(const lowp* __restrict__ qkv, const float* __restrict__ bias, lowp* __restrict__ o,
                 float* __restrict__ lse, int B, int N, int H, float scaleLog2) {
  __shared__ ClsWarpShared shared[CLS_WARPS];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, pair = blockIdx.x * CLS_WARPS + warp;
  if (pair >= B * H) return;  // warps only synchronise among their own lanes
  ClsWarpShared& sh = shared[warp];
  const int b = pair / H, h = pair % H, D = H * 64, ld = 3 * D, d = 2 * lane;
  const lowp* base = qkv + (long long)b * N * ld + h * 64;
  cls_load_query(sh, base, bias, D, h, lane);
  float m = -INFINITY;
  for (int j = lane; j < N; j += 32) {
    const float s = dot64_bias(base + (long long)j * ld + D, sh.kb, sh.q) * scaleLog2;
    sh.p[j] = s;
    m = fmaxf(m, s);
  }
  m = warp_max(m);
  float l = 0.f;
  for (int j = lane; j < N; j += 32) {
    const float p = fast_exp2(sh.p[j] - m);
    sh.p[j] = round_lowp(p);  // what enters P V; the denominator sums the unrounded value
    l += p;
  }
  l = warp_sum(l);
  __syncwarp();
  const float2 vb = make_float2(sh.vb[d], sh.vb[d + 1]);
  float2 acc = make_float2(0.f, 0.f);
#pragma unroll 4
  for (int j = 0; j < N; j++) {
    const float2 v = load2_bias(base + (long long)j * ld + 2 * D + d, vb);
    acc.x += sh.p[j] * v.x;
    acc.y += sh.p[j] * v.y;
  }
  const float inv = 1.f / l;
  *(lowp2*)(o + (long long)b * D + h * 64 + d) = to_lowp2(acc.x * inv, acc.y * inv);
  if (lse && lane == 0) lse[pair] = m + log2f(l);
}

extern "C" __global__ void __launch_bounds__(32 * CLS_WARPS)
    attn_cls_bwd(const lowp* __restrict__ qkv, const float* __restrict__ bias, const lowp* __restrict__ o,
                 const lowp* __restrict__ dO, const float* __restrict__ lse, lowp* __restrict__ dqkv, int B, int N,
                 int H, int S, float scaleLog2, float scale) {
  __shared__ ClsWarpShared shared[CLS_WARPS];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, task = blockIdx.x * CLS_WARPS + warp;
  if (task >= S * B * H) return;
  ClsWarpShared& sh = shared[warp];
  const int sig = task / (B * H), pair = task % (B * H), b = pair / H, h = pair % H;
  const int D = H * 64, ld = 3 * D, d = 2 * lane;
  const lowp* base = qkv + (long long)b * N * ld + h * 64;
  cls_load_query(sh, base, bias, D, h, lane);
  const lowp2 g2 = *(const lowp2*)(dO + ((long long)sig * B + b) * D + h * 64 + d);
  const lowp2 o2 = *(const lowp2*)(o + (long long)b * D + h * 64 + d);
  sh.g[d] = __low2float(g2);
  sh.g[d + 1] = __high2float(g2);
  const float Di = warp_sum(__low2float(g2) * __low2float(o2) + __high2float(g2) * __high2float(o2));
  __syncwarp();
  const float L = lse[pair];
  for (int j = lane; j < N; j += 32) {
    const lowp* row = base + (long long)j * ld;
    const float p = fast_exp2(dot64_bias(row + D, sh.kb, sh.q) * scaleLog2 - L);
    const float dp = dot64_bias(row + 2 * D, sh.vb, sh.g);
    sh.p[j] = round_lowp(p);
    sh.ds[j] = round_lowp(p * (dp - Di));
  }
  __syncwarp();
  const float2 q = make_float2(sh.q[d], sh.q[d + 1]), g = make_float2(sh.g[d], sh.g[d + 1]);
  const float2 kb = make_float2(sh.kb[d], sh.kb[d + 1]);
  lowp* out = dqkv + ((long long)sig * B * N + (long long)b * N) * ld + h * 64 + d;
  float2 dq = make_float2(0.f, 0.f);
#pragma unroll 4
  for (int j = 0; j < N; j++) {
    const float ds = sh.ds[j], p = sh.p[j];
    const float2 k = load2_bias(base + (long long)j * ld + D + d, kb);
    dq.x += ds * k.x;
    dq.y += ds * k.y;
    lowp* row = out + (long long)j * ld;
    *(lowp2*)(row + D) = to_lowp2(ds * q.x * scale, ds * q.y * scale);
    *(lowp2*)(row + 2 * D) = to_lowp2(p * g.x, p * g.y);
  }
  *(lowp2*)out = to_lowp2(dq.x * scale, dq.y * scale);
}
