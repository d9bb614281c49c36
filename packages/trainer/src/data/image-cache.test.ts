import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { DatasetItem } from "./dataset.js";
import { buildImageCache, MIN_WORKER_IMAGES, resizeWorkerCount } from "./image-cache.js";
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

/** Seeded pixels of a smooth-ish pattern with noise (JPEG artefacts differ per image). */
function pattern(width: number, height: number, channels: number, seed: number): Buffer {
  const data = Buffer.alloc(width * height * channels);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const p = Math.floor(i / channels);
    data[i] = ((p % width) * 5 + Math.floor(p / width) * 3 + (i % channels) * 60 + (s >>> 28)) & 255;
  }
  return data;
}

describe("resizeWorkerCount", () => {
  it("leaves libuv's decoders their threads, at most half", () => {
    vi.stubEnv("UV_THREADPOOL_SIZE", "");
    expect([1, 2, 3, 4, 8, 16, 64].map(resizeWorkerCount)).toEqual([0, 0, 2, 2, 4, 12, 60]);
    vi.stubEnv("UV_THREADPOOL_SIZE", "16");
    expect([2, 4, 16, 64].map(resizeWorkerCount)).toEqual([0, 2, 8, 48]);
    vi.unstubAllEnvs();
  });
});

describe("buildImageCache in parallel", () => {
  const size = 24;
  let dir = "";
  let items: DatasetItem[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "unmask-image-cache-"));
    // JPEGs of several shapes (down- and upscaled, one already 24 x 24), grey and RGBA PNGs, and
    // in-memory pixels, 48 items in all (some files twice)
    const files: string[] = [];
    const shapes = [
      [50, 37],
      [37, 50],
      [24, 24],
      [13, 9],
      [64, 48],
    ];
    for (let i = 0; i < 20; i++) {
      const [w, h] = shapes[i % shapes.length];
      const file = join(dir, `photo-${i}.jpg`);
      await sharp(pattern(w, h, 3, i + 1), { raw: { width: w, height: h, channels: 3 } })
        .jpeg({ quality: 85 })
        .toFile(file);
      files.push(file);
    }
    for (const channels of [1, 4] as const) {
      const file = join(dir, `png-${channels}.png`);
      await sharp(pattern(30, 20, channels, channels), { raw: { width: 30, height: 20, channels } })
        .png()
        .toFile(file);
      files.push(file);
    }
    const memory = inMemoryDataset({
      classNames: ["a"],
      images: [
        { width: 28, height: 28, channels: 1, data: new Uint8Array(pattern(28, 28, 1, 9)), label: 0 },
        { width: 9, height: 31, channels: 4, data: new Uint8Array(pattern(9, 31, 4, 10)), label: 0 },
      ],
    }).items;
    items = [
      ...files.map((source, i) => ({ id: `f${i}`, label: 0, source })),
      ...memory,
      ...files.slice(0, 24).map((source, i) => ({ id: `g${i}`, label: 0, source })),
    ];
    expect(items.length).toBeGreaterThanOrEqual(MIN_WORKER_IMAGES);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The sequential path: one image at a time, decode then resize, appended in order. */
  async function sequential() {
    const pixels = new Uint8Array(items.length * size * size * 3);
    const sizes: { width: number; height: number }[] = [];
    for (let i = 0; i < items.length; i++) {
      const image = await clipImageIo.load(items[i].source);
      sizes.push({ width: image.width, height: image.height });
      const same = image.width === size && image.height === size;
      pixels.set(same ? image.data : clipImageIo.resize(image, size, size).data, i * size * size * 3);
    }
    return { pixels, sizes };
  }

  it("worker threads and the calling thread write the sequential path's bytes", async () => {
    const expected = await sequential();
    for (const threads of [3, 1]) {
      const seen: number[] = [];
      const { cache, sizes } = await buildImageCache({
        items,
        size,
        io: clipImageIo,
        threads,
        onImage: (done, total) => {
          expect(total).toBe(items.length);
          seen.push(done);
        },
      });
      expect(cache).toMatchObject({ count: items.length, width: size, height: size });
      expect(Buffer.from(cache.pixels).equals(Buffer.from(expected.pixels))).toBe(true);
      expect(sizes).toEqual(expected.sizes);
      expect(seen).toEqual(Array.from({ length: items.length }, (_, i) => i + 1));
    }
  });

  it("names the file that cannot be read or decoded, on workers and on the calling thread", async () => {
    const broken = join(dir, "broken.jpg");
    await writeFile(broken, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
    const missing = join(dir, "missing.jpg");
    for (const [source, code] of [
      [broken, "IMAGE_DECODE_FAILED"],
      [missing, "IMAGE_READ_FAILED"],
    ]) {
      const bad = [...items];
      bad[7] = { id: "bad", label: 0, source };
      for (const threads of [3, 1])
        await expect(buildImageCache({ items: bad, size, io: clipImageIo, threads })).rejects.toMatchObject({
          code,
          subject: source,
        });
    }
  });

  it("a resize worker's error reaches the caller with its code", async () => {
    // the default resize (so the workers run it) of an image whose bytes do not fill it
    const io = { ...clipImageIo, load: async () => ({ width: 40, height: 30, data: new Uint8Array(10) }) };
    await expect(buildImageCache({ items, size, io, threads: 3 })).rejects.toMatchObject({
      code: "BAD_IMAGE",
    });
  });

  it("stops at an aborted signal", async () => {
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    for (const threads of [3, 1])
      await expect(
        buildImageCache({ items, size, io: clipImageIo, threads, signal: controller.signal }),
      ).rejects.toThrow("stop");
  });
});
