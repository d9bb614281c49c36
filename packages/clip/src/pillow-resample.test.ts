import { isUnmaskError } from "@unmask/mask-format";
import { describe, expect, it } from "vitest";
import { type PixelImage, resizeImage, resizeRgb } from "./pillow-resample.js";

/** Keys' cubic, a = -0.5. */
function cubic(x: number): number {
  const ax = Math.abs(x);
  if (ax < 1) return (1.5 * ax - 2.5) * ax * ax + 1;
  if (ax < 2) return (((ax - 5) * ax + 8) * ax - 4) * -0.5;
  return 0;
}

/** A plain float64 separable resampler with Pillow's windows, no fixed point: the math, not the rounding. */
function referenceResize(image: PixelImage, width: number, height: number): Float64Array {
  const pass = (src: Float64Array, inW: number, inH: number, outSize: number, horizontal: boolean) => {
    const inSize = horizontal ? inW : inH;
    const scale = inSize / outSize;
    const fs = Math.max(scale, 1);
    const support = 2 * fs;
    const outW = horizontal ? outSize : inW;
    const outH = horizontal ? inH : outSize;
    const c = image.channels;
    const out = new Float64Array(outW * outH * c);
    for (let o = 0; o < outSize; o++) {
      const center = (o + 0.5) * scale;
      const lo = Math.max(Math.trunc(center - support + 0.5), 0);
      const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
      const w: number[] = [];
      for (let i = lo; i < hi; i++) w.push(cubic((i - center + 0.5) / fs));
      const total = w.reduce((a, b) => a + b, 0);
      const other = horizontal ? inH : inW;
      for (let j = 0; j < other; j++)
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let i = lo; i < hi; i++) {
            const idx = horizontal ? (j * inW + i) * c + ch : (i * inW + j) * c + ch;
            s += src[idx] * (w[i - lo] / total);
          }
          const v = Math.min(255, Math.max(0, Math.round(s)));
          out[horizontal ? (j * outW + o) * c + ch : (o * outW + j) * c + ch] = v;
        }
    }
    return out;
  };
  const h = pass(Float64Array.from(image.data), image.width, image.height, width, true);
  return pass(h, width, image.height, height, false);
}

function pseudoRandomImage(width: number, height: number, channels: number, seed: number): PixelImage {
  const data = new Uint8Array(width * height * channels);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s >>> 24;
  }
  return { width, height, channels, data };
}

describe("resizeImage (Pillow bicubic)", () => {
  it("matches a hand-computed antialiased 2x downscale", () => {
    // Output 0: taps at offsets -0.25, 0.25, 0.75, 1.25 (support 4 after the x2 scale):
    // weights .8672 .8672 .2266 -.0703, normalised: 255 * (.2266 - .0703) / 1.8984 = 20.99 -> 21.
    const out = resizeImage(
      { width: 4, height: 1, channels: 1, data: new Uint8Array([0, 0, 255, 255]) },
      2,
      1,
    );
    expect(Array.from(out.data)).toEqual([21, 234]);
  });

  it("stays within one level of exact float64 resampling, down and up", () => {
    for (const [w, h, ow, oh] of [
      [97, 61, 40, 29],
      [31, 17, 64, 45],
      [50, 50, 50, 23],
      [64, 48, 21, 48],
    ]) {
      const image = pseudoRandomImage(w, h, 3, w * 1000 + h);
      const got = resizeImage(image, ow, oh);
      const want = referenceResize(image, ow, oh);
      let maxDiff = 0;
      for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got.data[i] - want[i]));
      expect({ size: [w, h, ow, oh], maxDiff: maxDiff <= 1 }).toEqual({
        size: [w, h, ow, oh],
        maxDiff: true,
      });
    }
  });

  it("returns a copy when the size does not change", () => {
    const image = pseudoRandomImage(8, 6, 3, 1);
    const out = resizeImage(image, 8, 6);
    expect(out.data).toEqual(image.data);
    expect(out.data).not.toBe(image.data);
  });

  it("treats opaque RGBA like RGB, and keeps transparent colour from bleeding (premultiplied)", () => {
    const rgb = pseudoRandomImage(30, 20, 3, 7);
    const rgba = new Uint8Array(30 * 20 * 4);
    for (let i = 0; i < 600; i++) {
      rgba.set(rgb.data.subarray(i * 3, i * 3 + 3), i * 4);
      rgba[i * 4 + 3] = 255;
    }
    const fromRgb = resizeRgb(rgb, 13, 9);
    const fromRgba = resizeImage({ width: 30, height: 20, channels: 4, data: rgba }, 13, 9);
    for (let i = 0; i < 13 * 9; i++) {
      expect(Array.from(fromRgba.data.subarray(i * 4, i * 4 + 3))).toEqual(
        Array.from(fromRgb.data.subarray(i * 3, i * 3 + 3)),
      );
    }
    // Left half opaque red, right half fully transparent green: no green may appear.
    const half = new Uint8Array(8 * 2 * 4);
    for (let y = 0; y < 2; y++)
      for (let x = 0; x < 8; x++) half.set(x < 4 ? [255, 0, 0, 255] : [0, 255, 0, 0], (y * 8 + x) * 4);
    const out = resizeImage({ width: 8, height: 2, channels: 4, data: half }, 3, 1);
    for (let x = 0; x < 3; x++) expect(out.data[x * 4 + 1]).toBe(0);
  });

  it("picks Pillow's nearest pixels", () => {
    const row = { width: 6, height: 1, channels: 1, data: new Uint8Array([0, 1, 2, 3, 4, 5]) };
    expect(Array.from(resizeImage(row, 3, 1, "nearest").data)).toEqual([1, 3, 5]);
    expect(Array.from(resizeImage(row, 4, 1, "nearest").data)).toEqual([0, 2, 3, 5]);
  });

  it("rejects inconsistent data and bad sizes", () => {
    const image = pseudoRandomImage(4, 4, 3, 2);
    expect(() => resizeImage({ ...image, data: image.data.subarray(1) }, 2, 2)).toThrow(/bytes/);
    expect(() => resizeImage(image, 0, 2)).toThrow(/width/);
    expect(() => resizeImage({ ...image, channels: 5 }, 2, 2)).toThrow(/channels/);
    let error: unknown;
    try {
      resizeImage(image, 2, 2.5);
    } catch (e) {
      error = e;
    }
    expect(isUnmaskError(error, "BAD_OPTION")).toBe(true);
  });
});
