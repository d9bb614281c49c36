import { CLIP_MEAN, CLIP_STD } from "@unmask/clip";
import { describe, expect, it } from "vitest";
import type { ImageCache } from "../../engine.js";
import { augmentCrops } from "./augment.js";

/** A 4 x 4 image whose red channel is 10 x + 40 y, green 255 - that, blue 7. */
function ramp(): ImageCache {
  const W = 4;
  const H = 4;
  const pixels = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      pixels[(y * W + x) * 3] = 10 * x + 40 * y;
      pixels[(y * W + x) * 3 + 1] = 255 - (10 * x + 40 * y);
      pixels[(y * W + x) * 3 + 2] = 7;
    }
  return { count: 1, width: W, height: H, pixels };
}

/** Undo CLIP normalisation of channel c back to 0..255. */
const raw = (v: number, c: number) => (v * CLIP_STD[c] + CLIP_MEAN[c]) * 255;

describe("augmentCrops", () => {
  const cache = ramp();
  const crop = (box: number[], flip: number, R: number) => {
    const out = new Float32Array(3 * R * R);
    augmentCrops(
      out,
      cache,
      { indices: Int32Array.of(0), boxes: Float32Array.from(box), flips: Uint8Array.of(flip) },
      1,
      R,
    );
    return out;
  };

  it("reproduces the image for the full box at its own size (sample centres hit pixel centres)", () => {
    const out = crop([0, 0, 1, 1], 0, 4);
    for (let y = 0; y < 4; y++)
      for (let x = 0; x < 4; x++) {
        expect(raw(out[y * 4 + x], 0)).toBeCloseTo(10 * x + 40 * y, 3);
        expect(raw(out[16 + y * 4 + x], 1)).toBeCloseTo(255 - 10 * x - 40 * y, 3);
        expect(raw(out[32 + y * 4 + x], 2)).toBeCloseTo(7, 3);
      }
  });

  it("mirrors columns when flipped", () => {
    const out = crop([0, 0, 1, 1], 1, 4);
    for (let y = 0; y < 4; y++)
      for (let x = 0; x < 4; x++) expect(raw(out[y * 4 + x], 0)).toBeCloseTo(10 * (3 - x) + 40 * y, 3);
  });

  it("interpolates bilinearly and replicates edges (align_corners false)", () => {
    // box covering pixels x in [1, 3), y in [0, 2), resampled to 4 x 4: sample centres at
    // source x = 1 + (ox + 0.5) / 2 - 0.5 = 0.75, 1.25, 1.75, 2.25; y = -0.25 (clamped to 0), 0.25, 0.75, 1.25
    const out = crop([0.25, 0, 0.5, 0.5], 0, 4);
    const xs = [0.75, 1.25, 1.75, 2.25];
    const ys = [0, 0.25, 0.75, 1.25];
    for (let oy = 0; oy < 4; oy++)
      for (let ox = 0; ox < 4; ox++)
        expect(raw(out[oy * 4 + ox], 0)).toBeCloseTo(10 * xs[ox] + 40 * ys[oy], 3);
  });
});
