import { describe, expect, it } from "vitest";
import { CROP_RATIO, randomResizedCropBox, roundHalfEven } from "./crop.js";
import { SeededRandom } from "./random.js";

describe("randomResizedCropBox", () => {
  it("rounds halves to even as Python does", () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, 2, 3]);
  });

  it("keeps boxes inside the image, with area and ratio in range up to rounding", () => {
    const rng = new SeededRandom(11);
    for (const [w, h] of [
      [28, 28],
      [640, 480],
      [480, 640],
      [224, 224],
      [1000, 50],
    ]) {
      for (let i = 0; i < 500; i++) {
        const box = randomResizedCropBox(rng, w, h);
        expect(box.left >= 0 && box.top >= 0).toBe(true);
        expect(box.left + box.width <= w && box.top + box.height <= h).toBe(true);
        expect(box.width > 0 && box.height > 0).toBe(true);
        if (w / h <= CROP_RATIO[1] && w / h >= CROP_RATIO[0] && w >= 28) {
          // accepted attempts: area fraction in [0.5, 1] and ratio in [3/4, 4/3], up to one pixel of rounding
          const area = (box.width * box.height) / (w * h);
          expect(area).toBeGreaterThan(0.5 - (2 * (w + h)) / (w * h));
          expect(area).toBeLessThanOrEqual(1);
          const ratio = box.width / box.height;
          expect(ratio).toBeGreaterThan((3 / 4) * (1 - 2 / Math.min(box.width, box.height)));
          expect(ratio).toBeLessThan((4 / 3) * (1 + 2 / Math.min(box.width, box.height)));
        }
      }
    }
  });

  it("falls back to a centered crop at the ratio limit when no attempt fits", () => {
    // 1000x50 (ratio 20): any box of area >= 25,000 and ratio <= 4/3 is taller than 50 px.
    const box = randomResizedCropBox(new SeededRandom(1), 1000, 50);
    expect(box).toEqual({ left: Math.floor((1000 - 67) / 2), top: 0, width: 67, height: 50 });
    const tall = randomResizedCropBox(new SeededRandom(1), 50, 1000);
    expect(tall).toEqual({ left: 0, top: Math.floor((1000 - 67) / 2), width: 50, height: 67 });
  });

  it("covers the image at scale 1 sometimes and varies positions", () => {
    const rng = new SeededRandom(5);
    const lefts = new Set<number>();
    for (let i = 0; i < 200; i++) lefts.add(randomResizedCropBox(rng, 100, 100).left);
    expect(lefts.size).toBeGreaterThan(10);
  });
});
