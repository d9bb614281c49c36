// The mask update, one pass per masked tensor (docs/cuda-engine.md 1, step 7):
//   a = dW'_ce * W + regWeight * S / ||S||     (straight-through gradient of ce + regulariser)
//   b = dW'_kl * W
//   (dW' unscaled first: gradScale = 1 / the loss scale, a power of two, 1 in bf16)
//   P = (sign(a) (a + b) / (|a| + |b| + 1e-8) + 1) / 2, keep = P > u (Philox, or given draws)
//   g = ((1 - lambda) + lambda * keep) * a
//   Adam (PyTorch's): m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//                     S -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
//   W' = [S > t] * W in bf16 for the next step.
// `params` is a device struct written by the host before each step: {lr, bc1, sqrt(bc2), step}.
// mask_sumsq writes per-block partial sums of S^2 into partials[slot * 1024 + block] and
// mask_norms adds them in a fixed order into norms[slot] (deterministic: no float atomics, so a
// replayed step is bit-identical); mask_apply builds W' alone.
#include "common.cuh"
#include "philox.cuh"

struct StepParams {
  float lr, bc1, bc2sqrt;
  uint32_t step;
};

#define SUMSQ_BLOCKS 1024

extern "C" __global__ void mask_sumsq(const float* __restrict__ S, long long n, float* __restrict__ partials,
                                      int slot) {
  __shared__ float red[32];
  float acc = 0.f;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    acc += S[i] * S[i];
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) partials[slot * SUMSQ_BLOCKS + blockIdx.x] = acc;
}

// One block of 1024 threads per tensor: norms[t] = sum of partials[t * 1024 + 0 .. blocks[t] - 1].
extern "C" __global__ void mask_norms(const float* __restrict__ partials, const int32_t* __restrict__ blocks,
                                      float* __restrict__ norms) {
  __shared__ float red[32];
  const int t = blockIdx.x;
  const float v = threadIdx.x < blocks[t] ? partials[t * SUMSQ_BLOCKS + threadIdx.x] : 0.f;
  const float total = block_sum(v, red);
  if (threadIdx.x == 0) norms[t] = total;
}

extern "C" __global__ void mask_apply(const float* __restrict__ S, const float* __restrict__ W, lowp* __restrict__ Wp,
                                      long long n, float threshold) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) Wp[i] = to_lowp(S[i] > threshold ? W[i] : 0.f);
}

// One thread per 4 consecutive elements: one Philox block serves all four.
extern "C" __global__ void mask_update(float* __restrict__ S, const float* __restrict__ W, lowp* __restrict__ Wp,
                                       const float* __restrict__ grads,  // [2, n]: dW'_ce, dW'_kl
                                       float gradScale,  // 1 / head_step's lossScale
                                       float* __restrict__ adamM, float* __restrict__ adamV, long long n,
                                       int tensorIndex, const float* __restrict__ norms, int slot,
                                       const StepParams* __restrict__ params,
                                       const float* __restrict__ uniforms,  // [n] or null: Philox
                                       uint32_t seed, float regWeight, float threshold, float lambda, float beta1,
                                       float beta2, float eps) {
  const long long block = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long base = block * 4;
  if (base >= n) return;
  const StepParams p = *params;
  const float regScale = regWeight * rsqrtf(norms[slot]);
  float u[4];
  if (uniforms) {
#pragma unroll
    for (int j = 0; j < 4; j++) u[j] = base + j < n ? uniforms[base + j] : 0.f;
  } else {
    const uint4 w = philox4x32_10(make_uint4((uint32_t)block, p.step, (uint32_t)tensorIndex, 0u), seed, 0u);
    u[0] = philox_uniform(w.x);
    u[1] = philox_uniform(w.y);
    u[2] = philox_uniform(w.z);
    u[3] = philox_uniform(w.w);
  }
  const float stepSize = p.lr / p.bc1;
  // one element's update; the same arithmetic on either path below
  const auto update = [&](float s, float wt, float gce, float gkl, float& m, float& v, float uj, float& sn) {
    const float a = (gce * gradScale) * wt + regScale * s;
    const float b = (gkl * gradScale) * wt;
    const float sg = a > 0.f ? 1.f : (a < 0.f ? -1.f : 0.f);
    const float P = (sg * (a + b) / (fabsf(a) + fabsf(b) + 1e-8f) + 1.f) * 0.5f;
    const float g = ((1.f - lambda) + lambda * (P > uj ? 1.f : 0.f)) * a;
    m = beta1 * m + (1.f - beta1) * g;
    v = beta2 * v + (1.f - beta2) * g * g;
    sn = s - stepSize * m / (sqrtf(v) / p.bc2sqrt + eps);
  };
  if (base + 4 <= n && (n & 3) == 0) {
    // 16-byte loads and stores (every region is 256-byte aligned and n a multiple of 4)
    const float4 s = *(const float4*)(S + base), wt = *(const float4*)(W + base);
    const float4 gce = *(const float4*)(grads + base), gkl = *(const float4*)(grads + n + base);
    float4 m = *(const float4*)(adamM + base), v = *(const float4*)(adamV + base), sn;
    update(s.x, wt.x, gce.x, gkl.x, m.x, v.x, u[0], sn.x);
    update(s.y, wt.y, gce.y, gkl.y, m.y, v.y, u[1], sn.y);
    update(s.z, wt.z, gce.z, gkl.z, m.z, v.z, u[2], sn.z);
    update(s.w, wt.w, gce.w, gkl.w, m.w, v.w, u[3], sn.w);
    *(float4*)(adamM + base) = m;
    *(float4*)(adamV + base) = v;
    *(float4*)(S + base) = sn;
    lowp2 lo = to_lowp2(sn.x > threshold ? wt.x : 0.f, sn.y > threshold ? wt.y : 0.f);
    lowp2 hi = to_lowp2(sn.z > threshold ? wt.z : 0.f, sn.w > threshold ? wt.w : 0.f);
    uint2 packed;
    packed.x = *(uint32_t*)&lo;
    packed.y = *(uint32_t*)&hi;
    *(uint2*)(Wp + base) = packed;
    return;
  }
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const long long i = base + j;
    if (i >= n) break;
    float m = adamM[i], v = adamV[i], sn;
    const float wt = W[i];
    update(S[i], wt, grads[i], grads[n + i], m, v, u[j], sn);
    adamM[i] = m;
    adamV[i] = v;
    S[i] = sn;
    Wp[i] = to_lowp(sn > threshold ? wt : 0.f);
  }
}
