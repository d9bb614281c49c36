// The few-shot image cache (buildImageCache, src/data/image-cache.ts) before and after parallel
// decoding, in one run: 2,000 generated 500 x 375 JPEGs (quality 90, written with sharp into the
// temp folder, reused across runs) cached at 224 x 224 with the default I/O (sharp decode + the
// Pillow-exact bicubic resize in JavaScript).
//   - "before": data/image-cache.ts of commit BASELINE (8 images decoded at a time, each group
//     resized on the calling thread), compiled from git (bench/lib/baseline.mjs);
//   - "after, threads N" (N = os.availableParallelism(), the default): N + 4 images in flight, the
//     resize on resizeWorkerCount(N) worker threads (12 of 16; none on 2 cores: the calling thread);
//   - "after, threads 4": the worker path (2 resize workers), where the default does not take it.
// Prints images/s, wall and CPU seconds, and whether the cache bytes equal the baseline's; then
// one image's decode and resize times alone (sequential), from which the throughput on more cores
// follows: about min(libuv pool size / decode, cores / (decode + resize) CPU).
// Run after building this package:
//   node bench/image-cache.mjs [images=2000] [size=224] [width=500] [height=375]
// (224 224 for images already at the cache size: no resize, the decode and copy alone). The
// calling thread's CPU per image (Linux /proc per-thread stat, 10 ms ticks) bounds the throughput
// on any number of cores: 1000 / (ms per image) images/s.
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { resizeWorkerCount } from "../dist/data/image-cache.js";
import { clipImageIo } from "../dist/data/image-io.js";
import { buildImageCache, loadImageFolder } from "../dist/index.js";
import { importAtRevision } from "./lib/baseline.mjs";

const BASELINE = "5ce378b";
const count = Number(process.argv[2] ?? 2000);
const size = Number(process.argv[3] ?? 224);
const WIDTH = Number(process.argv[4] ?? 500);
const HEIGHT = Number(process.argv[5] ?? 375);
const CLASSES = 10;
const root = join(tmpdir(), `unmask-image-cache-bench-${WIDTH}x${HEIGHT}`);

/** A photo-like image: smooth colour gradients with a seeded texture (so JPEG has work to do). */
async function writeImage(file, seed) {
  const pixels = Buffer.alloc(WIDTH * HEIGHT * 3);
  let s = seed;
  for (let y = 0; y < HEIGHT; y++)
    for (let x = 0; x < WIDTH; x++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      const o = (y * WIDTH + x) * 3;
      const noise = s >>> 27;
      pixels[o] = (x * 0.5 + seed * 13 + noise) & 255;
      pixels[o + 1] = (y * 0.7 + ((x * y) >> 9) + noise) & 255;
      pixels[o + 2] = (128 + 100 * Math.sin((x + y + seed) / 40) + noise) & 255;
    }
  await sharp(pixels, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
    .jpeg({ quality: 90 })
    .toFile(file);
}

async function ensureImages() {
  const have = existsSync(root)
    ? readdirSync(root).reduce((n, c) => n + readdirSync(join(root, c)).length, 0)
    : 0;
  if (have >= count) return;
  const t0 = performance.now();
  for (let c = 0; c < CLASSES; c++) mkdirSync(join(root, `class-${c}`), { recursive: true });
  for (let i = have; i < count; i++)
    await writeImage(join(root, `class-${i % CLASSES}`, `${String(i).padStart(5, "0")}.jpg`), i + 1);
  console.log(`wrote ${count - have} JPEGs to ${root} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** CPU time of the calling (main) thread in ms, from Linux's per-thread stat (10 ms ticks); NaN elsewhere. */
function callingThreadMs() {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

async function timed(build, options) {
  const cpu0 = process.cpuUsage();
  const main0 = callingThreadMs();
  const t0 = performance.now();
  const { cache } = await build({ items, size, io: clipImageIo, ...options });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const mainMs = (callingThreadMs() - main0) / items.length;
  return { pixels: cache.pixels, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, mainMs };
}

/** decodeImage before the one-call change (clip b9820ac^): readFile, metadata(), then raw(). */
async function loadTwoCalls(file) {
  const pipeline = sharp(await readFile(file), {
    ignoreIcc: true,
    failOn: "error",
    limitInputPixels: 0x3fff * 0x3fff,
  });
  await pipeline.metadata();
  return pipeline.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
}

await ensureImages();
const dataset = await loadImageFolder({ root });
const items = dataset.items.slice(0, count);
const before = (await importAtRevision(BASELINE, "data/image-cache.ts")).buildImageCache;
const threads = availableParallelism();
console.log(
  `${items.length} JPEGs ${WIDTH} x ${HEIGHT} -> ${size} x ${size}; ${threads} cores, sharp.concurrency() ${sharp.concurrency()}, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? "unset (4)"}`,
);
const plan = (n) =>
  resizeWorkerCount(n) ? `${resizeWorkerCount(n)} resize workers` : "calling thread resizes";
const runs = [
  ["before (8 at a time)", await timed(before, {})],
  [`after, threads ${threads}: ${plan(threads)}`, await timed(buildImageCache, {})],
];
if (!resizeWorkerCount(threads))
  runs.push([`after, threads 4: ${plan(4)}`, await timed(buildImageCache, { threads: 4 })]);
const base = runs[0][1];
for (const [name, run] of runs)
  console.log(
    `  ${name.padEnd(44)} ${(items.length / run.seconds).toFixed(0).padStart(6)} images/s  ${run.seconds.toFixed(2).padStart(6)} s (CPU ${run.cpuSeconds.toFixed(2).padStart(6)} s, calling thread ${run.mainMs.toFixed(3)} ms/image)  x${(base.seconds / run.seconds).toFixed(2)}` +
      (run === base
        ? ""
        : `  bytes ${Buffer.from(run.pixels).equals(Buffer.from(base.pixels)) ? "identical" : "DIFFER"}`),
  );

// the decode alone, threads + 4 in flight: calling-thread CPU per image, one sharp call vs two
for (const [name, load] of [
  ["decode alone, metadata() + raw() (before)", loadTwoCalls],
  ["decode alone, clipImageIo.load (one call)", (file) => clipImageIo.load(file)],
]) {
  const main0 = callingThreadMs();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: threads + 4 }, async () => {
      while (next < items.length) await load(items[next++].source);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `  ${name.padEnd(44)} ${(items.length / seconds).toFixed(0).padStart(6)} images/s  calling thread ${((callingThreadMs() - main0) / items.length).toFixed(3)} ms/image`,
  );
}

// one image at a time on the calling thread: decode (file read + sharp), then the JavaScript resize
let decodeMs = 0;
let resizeMs = 0;
const sample = items.slice(0, 200);
for (const item of sample) {
  const t0 = performance.now();
  const image = await clipImageIo.load(item.source);
  const t1 = performance.now();
  if (image.width !== size || image.height !== size) clipImageIo.resize(image, size, size);
  decodeMs += t1 - t0;
  resizeMs += performance.now() - t1;
}
console.log(
  `  alone: decode ${(decodeMs / sample.length).toFixed(2)} ms, resize ${(resizeMs / sample.length).toFixed(2)} ms per image (${sample.length} images, one at a time)`,
);
