import { describe, expect, it } from "vitest";
import type { RawImage } from "./data/dataset.js";
import type { ImageIo } from "./data/image-io.js";
import { inMemoryDataset } from "./data/in-memory.js";
import type { Engine } from "./engine.js";
import { argmaxRows, evaluate } from "./evaluate.js";

/** Images whose single grey value is their index; the "preprocess" copies it into every pixel. */
const io: ImageIo = {
  load: async () => {
    throw new Error("unused");
  },
  resize: (image) => image,
  preprocess: async (source, resolution) =>
    new Float32Array(3 * resolution * resolution).fill((source as RawImage).data[0]),
};

/** Teacher predicts index mod 3; student predicts class 1 always. */
const engine = {
  name: "cpu",
  forward: async (pixels: Float32Array, count: number, options?: { teacher?: boolean }) => {
    const plane = pixels.length / count;
    const out = new Float32Array(count * 3);
    for (let i = 0; i < count; i++) out[i * 3 + (options?.teacher ? pixels[i * plane] % 3 : 1)] = 1;
    return out;
  },
} as unknown as Engine;

const images = Array.from({ length: 10 }, (_, i) => ({
  width: 1,
  height: 1,
  channels: 1,
  data: Uint8Array.of(i),
  label: i < 5 ? i % 3 : 1,
}));
const dataset = inMemoryDataset({ classNames: ["a", "b", "c"], images });

describe("evaluate", () => {
  it("scores both models over batches", async () => {
    const done: number[] = [];
    const r = await evaluate({
      engine,
      dataset,
      resolution: 2,
      io,
      batchSize: 4,
      onProgress: (d) => done.push(d),
    });
    expect(done).toEqual([4, 8, 10]);
    expect(r.images).toBe(10);
    // teacher: right on 0-4 and on i % 3 === 1 among 5-9 (7): 6 of 10
    expect(r.zeroShot).toEqual({ correct: 6, accuracy: 0.6 });
    // student: always 1: right on 1, 4 and 5-9
    expect(r.masked).toEqual({ correct: 7, accuracy: 0.7 });
    expect(Array.from(r.predictions.masked as Int32Array)).toEqual(new Array(10).fill(1));
  });

  it("spreads a limit over the whole set and can run one model", async () => {
    const r = await evaluate({ engine, dataset, resolution: 1, io, limit: 5, models: ["zero-shot"] });
    expect(r.images).toBe(5);
    expect(Array.from(r.predictions.zeroShot as Int32Array)).toEqual([0, 2, 1, 0, 2]); // images 0 2 4 6 8
    expect(r.masked).toBeUndefined();
  });

  it("breaks ties toward the first class", () => {
    const out = new Int32Array(2);
    argmaxRows(Float32Array.of(1, 3, 3, 0, 0, 0), 2, 3, out);
    expect(Array.from(out)).toEqual([1, 0]);
  });
});
