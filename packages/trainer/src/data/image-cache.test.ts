import { describe, expect, it } from "vitest";
import { buildImageCache } from "./image-cache.js";
import { clipImageIo } from "./image-io.js";
import { inMemoryDataset } from "./in-memory.js";

describe("buildImageCache", () => {
  it("decodes to RGB at one size in order, keeping the original sizes", async () => {
    const grey = { width: 28, height: 20, channels: 1, data: new Uint8Array(28 * 20).fill(77), label: 0 };
    const rgba = { width: 5, height: 9, channels: 4, data: new Uint8Array(5 * 9 * 4), label: 1 };
    for (let p = 0; p < 45; p++) rgba.data.set([10, 200, 30, 128], p * 4);
    const exact = { width: 8, height: 8, channels: 3, data: new Uint8Array(8 * 8 * 3).fill(5), label: 0 };
    const images = Array.from({ length: 11 }, (_, i) => [grey, rgba, exact][i % 3]);
    const ds = inMemoryDataset({ classNames: ["a", "b"], images });
    const seen: number[] = [];
    const { cache, sizes } = await buildImageCache({
      items: ds.items,
      size: 8,
      io: clipImageIo,
      onImage: (done) => seen.push(done),
    });
    expect(seen).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
    expect(cache).toMatchObject({ count: 11, width: 8, height: 8 });
    expect(cache.pixels.length).toBe(11 * 8 * 8 * 3);
    expect(sizes.slice(0, 3)).toEqual([
      { width: 28, height: 20 },
      { width: 5, height: 9 },
      { width: 8, height: 8 },
    ]);
    const image = (i: number) => Array.from(cache.pixels.subarray(i * 192, (i + 1) * 192));
    expect(new Set(image(0))).toEqual(new Set([77])); // uniform grey stays uniform, replicated
    expect(image(1).slice(0, 3)).toEqual([10, 200, 30]); // alpha dropped
    expect(new Set(image(2))).toEqual(new Set([5]));
    expect(image(9)).toEqual(image(0));
  });

  it("refuses an unusable cache size", async () => {
    await expect(buildImageCache({ items: [], size: 0, io: clipImageIo })).rejects.toMatchObject({
      code: "BAD_OPTION",
    });
  });
});
