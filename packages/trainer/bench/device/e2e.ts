/**
 * The end-to-end run of `unmask train --device cuda` on the device machine: train() from a model
 * directory and an image folder (one subfolder per class, decoded with sharp), the same options
 * the CLI passes (out file, a checkpoint every epoch), with the time split by phase.
 *   node e2e.mjs model <outDir>                                  random-weight ViT-B/16 directory
 *   node e2e.mjs images <outDir> <classes> <perClass> <side> [distinct]
 *                                                                JPEG image folder (sharp; with
 *                                                                distinct, the rest are copies)
 *   node e2e.mjs train <modelDir> <dataDir> <epochs> <batch|-> <out.umask> [cpu|cuda]
 *   node e2e.mjs convert <checkpoint> <outDir>                   a model directory (no ONNX)
 *   node e2e.mjs traingpus <modelDir> <dataDir> <epochs> <batch> <out.umask> <gpus> [lr|-] [trainList]
 *                                                                train() on several GPUs (workers)
 *   node e2e.mjs maskdiff <a.umask> <b.umask>                    mask bits that differ
 *   node e2e.mjs decode <dataDir> [limit] [threads]              the image cache alone (buildImageCache),
 *                                                                with the process's user / system CPU
 * Prints one JSON line. Timing wraps (never changes) what train() calls: the image decoder, the
 * text encoder and the engine (creation, the image-cache upload, the steps).
 */
import { copyFileSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { readMaskFile } from "@unmask/mask-format/node";
import sharp from "sharp";
import { convert } from "../../../convert/src/index.js";
import { buildImageCache } from "../../src/data/image-cache.js";
import { loadImageFolder } from "../../src/data/image-folder.js";
import { clipImageIo, type ImageIo } from "../../src/data/image-io.js";
import type { Engine, EngineFactory } from "../../src/engine.js";
import { type EngineName, engineFactory } from "../../src/engine-factory.js";
import { encodeTextCpu } from "../../src/text-encoder.js";
import { train } from "../../src/train.js";
import { writeVitB16 } from "./make-vitb16.js";
import { benchPrecision } from "./with-env.js";

const [cmd, ...args] = process.argv.slice(2);
const out = (o: unknown) => console.log(JSON.stringify(o));

async function images(dir: string, classes: number, perClass: number, side: number, distinct = 0) {
  const t0 = performance.now();
  let x = 12345;
  const rand = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x & 255;
  };
  const jobs: { path: string; seed: Buffer }[] = [];
  for (let c = 0; c < classes; c++) {
    const folder = join(dir, `n${String(c).padStart(8, "0")}`);
    mkdirSync(folder, { recursive: true });
    for (let k = 0; k < perClass; k++) {
      const seed = Buffer.alloc(8 * 8 * 3);
      for (let i = 0; i < seed.length; i++) seed[i] = rand();
      jobs.push({ path: join(folder, `img_${k}.jpg`), seed });
    }
  }
  // smooth colour fields (an 8 x 8 random image upsampled) as JPEG, 32 encodes in flight
  let next = 0;
  let bytes = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const j = jobs[next++];
      const info = await sharp(j.seed, { raw: { width: 8, height: 8, channels: 3 } })
        .resize(side, side, { kernel: "cubic" })
        .jpeg({ quality: 90 })
        .toFile(j.path);
      bytes += info.size;
    }
  };
  // with `distinct` set, only the first `distinct` files are encoded and the rest are copies of
  // them in turn (the folder takes seconds to make instead of ~20; decoding costs the same)
  const encoded = distinct > 0 ? jobs.slice(0, distinct) : jobs;
  const copies = distinct > 0 ? jobs.slice(distinct) : [];
  jobs.length = encoded.length;
  await Promise.all(Array.from({ length: 32 }, worker));
  for (const [k, j] of copies.entries()) {
    copyFileSync(encoded[k % encoded.length].path, j.path);
    bytes += statSync(j.path).size;
  }
  jobs.push(...copies);
  out({
    images: jobs.length,
    classes,
    side,
    megabytes: +(bytes / 1e6).toFixed(1),
    seconds: +((performance.now() - t0) / 1000).toFixed(1),
  });
}

/** What both train commands give train(): the recipe, 16 shots of seed 1, a fresh run into outPath. */
function recipeRun(modelDir: string, dataDir: string, epochs: number, outPath: string) {
  return {
    model: modelDir,
    data: dataDir,
    shots: 16,
    seed: 1,
    preset: "recipe" as const,
    epochs,
    out: outPath,
    resume: false,
  };
}

async function run(
  modelDir: string,
  dataDir: string,
  epochs: number,
  batch: string,
  outPath: string,
  engine: string,
) {
  const t0 = performance.now();
  const since = () => (performance.now() - t0) / 1000;
  const split = {
    decode: 0,
    text: 0,
    engineCreate: 0,
    cacheUpload: 0,
    steps: 0,
    checkpoints: 0,
    afterLastEpoch: 0,
  };
  let decodeFirst = -1;
  let decodeLast = 0;
  let images = 0;
  const io: ImageIo = {
    ...clipImageIo,
    load: async (source) => {
      if (decodeFirst < 0) decodeFirst = since();
      const image = await clipImageIo.load(source);
      decodeLast = since();
      images++;
      return image;
    },
  };
  const base = await engineFactory(engine as EngineName);
  const factory: EngineFactory = async (model, options) => {
    const a = performance.now();
    const e: Engine = await base(model, options);
    split.engineCreate += (performance.now() - a) / 1000;
    const setImageCache = e.setImageCache.bind(e);
    const step = e.step.bind(e);
    e.setImageCache = async (cache) => {
      const b = performance.now();
      await setImageCache(cache);
      split.cacheUpload += (performance.now() - b) / 1000;
    };
    e.step = async (batchIn, stepOptions) => {
      const b = performance.now();
      const r = await step(batchIn, stepOptions);
      split.steps += (performance.now() - b) / 1000;
      return r;
    };
    return e;
  };
  // checkpoints are written while the next epoch trains: what they cost is the gap between an
  // epoch's end and the next epoch's start (the state snapshot), and from the last epoch's end to
  // train()'s "done" (the last write, the mask and the report)
  let lastEpochEnd = 0;
  let afterLastEpoch = 0;
  const epochSeconds: number[] = [];
  const result = await train({
    ...recipeRun(modelDir, dataDir, epochs, outPath),
    engine: engine as EngineName,
    ...benchPrecision(),
    engineFactory: factory,
    ...(batch === "-" ? {} : { batchSize: Number(batch) }),
    io,
    encodeText: (model) => async (tokens, count) => {
      const a = performance.now();
      const r = encodeTextCpu(model, tokens, count);
      split.text += (performance.now() - a) / 1000;
      return r;
    },
    onProgress: (e) => {
      if (e.status === "epoch-end") {
        lastEpochEnd = performance.now();
        epochSeconds.push(+e.seconds.toFixed(2));
      } else if (e.status === "epoch-start" && lastEpochEnd)
        split.checkpoints += (performance.now() - lastEpochEnd) / 1000;
      else if (e.status === "done") afterLastEpoch = (performance.now() - lastEpochEnd) / 1000;
    },
  });
  split.decode = decodeLast - decodeFirst;
  split.afterLastEpoch = afterLastEpoch;
  const r = result.report;
  out({
    run: "e2e_train",
    engine: r.engine,
    epochs,
    batch: batch === "-" ? 32 : Number(batch),
    trainImages: images,
    samples: r.history.reduce((a, h) => a + h.images, 0),
    totalSeconds: +since().toFixed(1),
    split: Object.fromEntries(Object.entries(split).map(([k, v]) => [k, +v.toFixed(2)])),
    report: {
      prepareSeconds: +r.time.prepareSeconds.toFixed(1),
      trainSeconds: +r.time.trainSeconds.toFixed(1),
      totalSeconds: +r.time.totalSeconds.toFixed(1),
      imagesPerSecond: +r.imagesPerSecond.toFixed(1),
      maskedFraction: r.maskedFraction,
    },
    epochSeconds,
    lastLoss: +r.history[r.history.length - 1].loss.toFixed(4),
  });
}

/**
 * train() as `unmask train --device cuda --gpus N` runs it (one worker process a GPU; run/train-worker.js
 * beside this bundle): the same options as `run` without its timing wrappers, which cannot cross
 * to the workers.
 */
async function trainOnGpus(
  modelDir: string,
  dataDir: string,
  epochs: number,
  batch: number,
  outPath: string,
  gpus: number,
  lr = "-",
  trainList?: string,
) {
  const t0 = performance.now();
  const result = await train({
    ...recipeRun(modelDir, dataDir, epochs, outPath),
    testData: null,
    ...(trainList ? { trainList } : {}),
    engine: "cuda",
    batchSize: batch,
    ...(lr === "-" ? {} : { lr: Number(lr) }),
    gpus,
  });
  const r = result.report;
  out({
    run: "e2e_train_gpus",
    gpus,
    epochs,
    batch,
    totalSeconds: +((performance.now() - t0) / 1000).toFixed(1),
    trainSeconds: +r.time.trainSeconds.toFixed(1),
    imagesPerSecond: +r.imagesPerSecond.toFixed(1),
    lr: r.recipe.lr,
    maskedFraction: r.maskedFraction,
    lastLoss: +r.history[r.history.length - 1].loss.toFixed(6),
  });
}

/** Mask bits that differ between two .umask files of the same model, tensor by tensor. */
async function maskDiff(a: string, b: string) {
  const [ma, mb] = await Promise.all([readMaskFile(a), readMaskFile(b)]);
  let bits = 0;
  let differing = 0;
  for (const ta of ma.tensors) {
    const tb = mb.tensors.find((t) => t.name === ta.name);
    if (!tb) throw new Error(`${b} has no tensor ${ta.name}`);
    const [x, y] = [ta.bits(), tb.bits()];
    for (let i = 0; i < x.length; i++) {
      let d = x[i] ^ y[i];
      for (; d; d &= d - 1) differing++;
    }
    bits += ta.numel;
  }
  out({ maskdiff: [a, b], bits, differing, agreement: 1 - differing / bits });
}

/** Decoding alone: the first `limit` images of the folder into a 224 px cache, timed with CPU use. */
async function decode(dir: string, limit: number, threads?: number) {
  const { items } = await loadImageFolder({ root: dir });
  const some = items.slice(0, limit || items.length);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await buildImageCache({ items: some, size: 224, io: clipImageIo, threads });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  out({
    decode: some.length,
    threads: threads ?? "default",
    uvThreadpool: process.env.UV_THREADPOOL_SIZE ?? "4",
    seconds: +seconds.toFixed(2),
    imagesPerSecond: Math.round(some.length / seconds),
    userMsPerImage: +(cpu.user / 1000 / some.length).toFixed(2),
    systemMsPerImage: +(cpu.system / 1000 / some.length).toFixed(2),
  });
}

if (cmd === "model") {
  const t0 = performance.now();
  writeVitB16(args[0]);
  out({ model: args[0], seconds: +((performance.now() - t0) / 1000).toFixed(1) });
} else if (cmd === "images")
  await images(args[0], Number(args[1]), Number(args[2]), Number(args[3]), Number(args[4] ?? 0));
else if (cmd === "decode") await decode(args[0], Number(args[1] ?? 0), args[2] ? Number(args[2]) : undefined);
else if (cmd === "train") await run(args[0], args[1], Number(args[2]), args[3], args[4], args[5] ?? "cuda");
else if (cmd === "traingpus")
  await trainOnGpus(
    args[0],
    args[1],
    Number(args[2]),
    Number(args[3]),
    args[4],
    Number(args[5]),
    args[6],
    args[7],
  );
else if (cmd === "convert") {
  await convert(args[0], args[1], { overwrite: true, onnx: false });
  out({ converted: args[0], to: args[1] });
} else if (cmd === "maskdiff") await maskDiff(args[0], args[1]);
else {
  console.error(
    "usage: e2e.mjs model <dir> | convert <checkpoint> <dir> | images <dir> <classes> <perClass> <side> [distinct] | train <model> <data> <epochs> <batch|-> <out> [engine] | traingpus <model> <data> <epochs> <batch> <out> <gpus> [lr|-] [trainList] | maskdiff <a.umask> <b.umask>",
  );
  process.exit(2);
}
