/**
 * Full R-AMT runs on Fashion-MNIST from the prepared uint8 file of prep-fashion.mjs (no sharp
 * needed), for the cuda engine on the device machine and the cpu engine here, with identical
 * datasets (in-memory, the few-shot list's 160 images; the 10,000 test images):
 *   node full.mjs <cpu|cuda> <model.jit.pt or model dir> <fashion.bin> <seeds 1,2,3> <epochs> <outDir>
 * Prints one JSON line per seed and writes <outDir>/<model>-seed<k>.mask (the raw mask bits of
 * every tensor, concatenated in order) for bit agreement between engines.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { convert } from "../../../convert/src/index.js";
import { inMemoryDataset } from "../../src/data/in-memory.js";
import { train } from "../../src/train.js";

const [engine, modelPath, dataPath, seedList, epochs, outDir] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const bytes = readFileSync(dataPath);
const headerLength = bytes.readUInt32LE(0);
const header = JSON.parse(bytes.subarray(4, 4 + headerLength).toString("utf8")) as {
  classNames: string[];
  width: number;
  height: number;
  test: number[];
  lists: Record<string, number[]>;
};
const px = header.width * header.height;
let offset = 4 + headerLength;
const take = (labels: number[]) =>
  labels.map((label) => {
    const data = new Uint8Array(bytes.subarray(offset, offset + px));
    offset += px;
    return { width: header.width, height: header.height, channels: 1 as const, data, label };
  });
const testImages = take(header.test);
const lists: Record<string, ReturnType<typeof take>> = {};
for (const seed of Object.keys(header.lists)) lists[seed] = take(header.lists[seed]);
const testData = inMemoryDataset({
  classNames: header.classNames,
  images: testImages,
  description: "fashion test",
});

// a checkpoint is converted here; a model directory (config.json + model.safetensors) is used as is
const name = basename(modelPath).replace(/\.jit\.pt$/, "");
const isDir = existsSync(join(modelPath, "config.json"));
const modelDir = isDir ? modelPath : join(outDir, `${name}-model`);
if (!isDir)
  await convert(modelPath, modelDir, { overwrite: true, onnx: false } as Parameters<typeof convert>[2]);
for (const seed of seedList.split(",").map(Number)) {
  const data = inMemoryDataset({
    classNames: header.classNames,
    images: lists[String(seed)],
    description: `fashion fewshot-16-seed${seed}`,
  });
  const t0 = performance.now();
  const result = await train({
    model: modelDir,
    data,
    testData,
    seed,
    engine: engine as "cpu" | "cuda",
    preset: "recipe",
    epochs: Number(epochs),
    out: null,
  });
  const r = result.report;
  const bits = result.masks.map((m) => m.bits);
  const all = new Uint8Array(bits.reduce((a, b) => a + b.length, 0));
  let o = 0;
  for (const b of bits) {
    all.set(b, o);
    o += b.length;
  }
  writeFileSync(join(outDir, `${name}-seed${seed}.mask`), all);
  console.log(
    JSON.stringify({
      run: "fashion_full",
      engine,
      model: name,
      seed,
      epochs: Number(epochs),
      zeroShot: r.accuracy.zeroShot,
      masked: r.accuracy.masked,
      maskedFraction: r.maskedFraction,
      testImages: r.accuracy.testImages,
      trainSeconds: +r.time.trainSeconds.toFixed(1),
      totalSeconds: +((performance.now() - t0) / 1000).toFixed(1),
      imagesPerSecond: +r.imagesPerSecond.toFixed(1),
    }),
  );
}
