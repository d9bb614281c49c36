/**
 * Full R-AMT runs on Fashion-MNIST from the prepared uint8 file of prep-fashion.mjs (no sharp
 * needed), for the cuda engine on the device machine and the cpu engine here, with identical
 * datasets (in-memory, the few-shot list's 160 images; the 10,000 test images):
 *   node full.mjs <cpu|cuda> <model.jit.pt or model dir> <fashion.bin> <seeds 1,2,3> <epochs> <outDir>
 * Prints one JSON line per seed and writes <outDir>/<model>-seed<k>.mask (the raw mask bits of
 * every tensor, concatenated in order) for bit agreement between engines.
 * FULL_LR_SCALE (e.g. 1.000001) multiplies the recipe's learning rate: a perturbation of the size
 * of fp32 rounding, to see how far a run's accuracy moves when its bits do.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { convert } from "../../../convert/src/index.js";
import { DEFAULT_PRECISION } from "../../src/engine.js";
import { PRESETS } from "../../src/options.js";
import { train } from "../../src/train.js";
import { loadFashion } from "./fashion-data.js";
import { benchPrecision } from "./with-env.js";

const [engine, modelPath, dataPath, seedList, epochs, outDir] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const fashion = loadFashion(dataPath);
const lrScale = Number(process.env.FULL_LR_SCALE ?? 1);

// a checkpoint is converted here; a model directory (config.json + model.safetensors) is used as is
const name = basename(modelPath).replace(/\.jit\.pt$/, "");
const isDir = existsSync(join(modelPath, "config.json"));
const modelDir = isDir ? modelPath : join(outDir, `${name}-model`);
if (!isDir) await convert(modelPath, modelDir, { overwrite: true, onnx: false });
for (const seed of seedList.split(",").map(Number)) {
  const t0 = performance.now();
  const result = await train({
    model: modelDir,
    data: fashion.list(seed),
    testData: fashion.test,
    seed,
    engine: engine as "cpu" | "cuda",
    ...benchPrecision(),
    preset: "recipe",
    ...(lrScale !== 1 ? { lr: PRESETS.recipe.lr * lrScale } : {}),
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
  const precision = benchPrecision().precision ?? DEFAULT_PRECISION;
  const tag = `${lrScale !== 1 ? `-lr${lrScale}` : ""}${engine === "cuda" && precision === "fp16" ? "-fp16" : ""}`;
  writeFileSync(join(outDir, `${name}-seed${seed}${tag}.mask`), all);
  console.log(
    JSON.stringify({
      run: "fashion_full",
      engine,
      ...(engine === "cuda" ? { precision } : {}),
      model: name,
      seed,
      lrScale,
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
