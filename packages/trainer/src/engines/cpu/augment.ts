/**
 * augment: random resized crop + horizontal flip of cached uint8 images, CLIP-normalised, the
 * training transform of docs/rmt-method.md 5 with the crop parameters drawn on the host
 * (engine.ts CropBatch) so every engine replays the same images. The CUDA kernel copies this
 * convention exactly:
 *
 *   box (x0, y0, w, h) in [0, 1] image coordinates: the crop spans source pixels
 *     [x0 W, (x0 + w) W) x [y0 H, (y0 + h) H) of an image W wide and H high.
 *   Output pixel (ox, oy) of R x R samples at its centre (align_corners = false):
 *     sx = (x0 + w (ox' + 0.5) / R) W - 0.5,   sy = (y0 + h (oy + 0.5) / R) H - 0.5
 *     with ox' = R - 1 - ox when flipped, else ox.
 *   Bilinear between the 4 neighbours floor(s), floor(s) + 1, each clamped to [0, W - 1] / [0, H - 1]
 *   (edge replication); weights from the fractional parts. No antialiasing.
 *   value = (bilinear / 255 - mean_c) / std_c with CLIP's mean/std; output [B, 3, R, R] float32.
 * Arithmetic in float64, one rounding to float32 at the end.
 */
import { CLIP_MEAN, CLIP_STD } from "@unmask/clip";
import type { CropBatch, ImageCache } from "../../engine.js";

export function augmentCrops(
  out: Float32Array,
  cache: ImageCache,
  crops: CropBatch,
  count: number,
  resolution: number,
): void {
  const { width: W, height: H, pixels } = cache;
  const R = resolution;
  const sx0 = new Int32Array(R);
  const sx1 = new Int32Array(R);
  const fx = new Float64Array(R);
  for (let n = 0; n < count; n++) {
    const image = crops.indices[n];
    const [bx, by, bw, bh] = crops.boxes.subarray(n * 4, n * 4 + 4);
    const flip = crops.flips[n] === 1;
    const base = image * H * W * 3;
    for (let ox = 0; ox < R; ox++) {
      const column = flip ? R - 1 - ox : ox;
      const sx = (bx + (bw * (column + 0.5)) / R) * W - 0.5;
      const x = Math.floor(sx);
      fx[ox] = sx - x;
      sx0[ox] = clamp(x, W - 1);
      sx1[ox] = clamp(x + 1, W - 1);
    }
    for (let oy = 0; oy < R; oy++) {
      const sy = (by + (bh * (oy + 0.5)) / R) * H - 0.5;
      const y = Math.floor(sy);
      const fy = sy - y;
      const row0 = base + clamp(y, H - 1) * W * 3;
      const row1 = base + clamp(y + 1, H - 1) * W * 3;
      for (let ox = 0; ox < R; ox++) {
        const a = sx0[ox] * 3;
        const b = sx1[ox] * 3;
        const f = fx[ox];
        for (let c = 0; c < 3; c++) {
          const top = pixels[row0 + a + c] * (1 - f) + pixels[row0 + b + c] * f;
          const bottom = pixels[row1 + a + c] * (1 - f) + pixels[row1 + b + c] * f;
          const value = top * (1 - fy) + bottom * fy;
          out[((n * 3 + c) * R + oy) * R + ox] = (value / 255 - CLIP_MEAN[c]) / CLIP_STD[c];
        }
      }
    }
  }
}

function clamp(i: number, max: number): number {
  return Math.max(0, Math.min(i, max));
}
