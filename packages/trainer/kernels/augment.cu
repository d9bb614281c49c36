// augment: random resized crop + horizontal flip of the uint8 few-shot cache, bilinear, scaled to
// [0,1] and normalised with CLIP's mean/std; one thread per output pixel (all 3 channels).
//
// Convention (the cpu engine's twin uses the same): output column ox in [0, R) samples the
// normalised coordinate u = (ox + 0.5) / R (u = 1 - u when flipped), source column
// sx = (x0 + u * w) * W - 0.5 clamped to [0, W - 1], bilinear between floor(sx) and floor(sx) + 1
// (clamped); rows the same with (y0, h, H). Boxes are (x0, y0, w, h) in [0, 1] image units.
#include "common.cuh"

extern "C" __global__ void augment_crop(const uint8_t* __restrict__ cache,  // [count, H, W, 3]
                                        const int32_t* __restrict__ indices,  // [B]
                                        const float* __restrict__ boxes,      // [B, 4]
                                        const uint8_t* __restrict__ flips,    // [B]
                                        float* __restrict__ out,              // [B, 3, R, R]
                                        int B, int H, int W, int R, float m0, float m1, float m2,
                                        float s0, float s1, float s2) {
  const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (long long)B * R * R) return;
  const int b = (int)(idx / ((long long)R * R));
  const int oy = (int)((idx / R) % R), ox = (int)(idx % R);
  const float bx = boxes[b * 4 + 0], by = boxes[b * 4 + 1], bw = boxes[b * 4 + 2], bh = boxes[b * 4 + 3];
  float u = (ox + 0.5f) / R;
  if (flips[b]) u = 1.f - u;
  const float v = (oy + 0.5f) / R;
  const float sx = fminf(fmaxf((bx + u * bw) * W - 0.5f, 0.f), (float)(W - 1));
  const float sy = fminf(fmaxf((by + v * bh) * H - 0.5f, 0.f), (float)(H - 1));
  const int x0 = (int)floorf(sx), y0 = (int)floorf(sy);
  const int x1 = min(x0 + 1, W - 1), y1 = min(y0 + 1, H - 1);
  const float fx = sx - x0, fy = sy - y0;
  const uint8_t* img = cache + (long long)indices[b] * H * W * 3;
  const float mean[3] = {m0, m1, m2}, stdv[3] = {s0, s1, s2};
#pragma unroll
  for (int c = 0; c < 3; c++) {
    const float p00 = img[(y0 * W + x0) * 3 + c], p01 = img[(y0 * W + x1) * 3 + c];
    const float p10 = img[(y1 * W + x0) * 3 + c], p11 = img[(y1 * W + x1) * 3 + c];
    const float top = p00 + (p01 - p00) * fx, bot = p10 + (p11 - p10) * fx;
    const float val = (top + (bot - top) * fy) * (1.f / 255.f);
    out[(((long long)b * 3 + c) * R + oy) * R + ox] = (val - mean[c]) / stdv[c];
  }
}
