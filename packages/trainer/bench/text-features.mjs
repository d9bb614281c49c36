// Class text features as train() computes them (buildClassTextFeatures over encodeTextCpu, 256
// prompts a call), before and after the text tower's shortcuts and threads, in one run:
//   - "before": src/text-encoder.ts of commit BASELINE (one thread, every block on every row of
//     chunks of 64 prompts in input order), compiled from git (bench/lib/baseline.mjs);
//   - "after, 1 thread" and "after, N threads" (N = os.availableParallelism()): this build.
// Models: ViT-B/16's text tower (VIT_B16_CONFIG of @unmask/convert/testing: width 512, 8 heads,
// 12 layers; seeded random weights) with 1,000 classes x 1 template, the class names of the device
// end-to-end run (n00000000..n00000999: 16 tokens a prompt); and nano-clip (converted from
// packages/cli/assets/demo/nano-clip.jit.pt) with the same 1,000 prompts and its 10 Fashion-MNIST
// classes. Prints wall and CPU seconds (all threads), prompts/s, the speed-up and the largest
// difference between the normalised features before and after. The machine should be otherwise
// idle: the threads' figure needs free cores.
// Run after building this package and @unmask/convert:
//   node bench/text-features.mjs [classes=1000]
//   node bench/text-features.mjs --quick [classes=1000] [threads...] [--before REV] [--profile] [--distinct]
// --quick times only this build on ViT-B/16's text tower (no nano-clip), once per thread count
// given (default 1 and os.availableParallelism()), after one warm-up call that builds the tower:
// wall and CPU seconds, and the largest difference to the first run's features (0: the same bits
// for every thread count). --before REV times text-encoder.ts of git revision REV first (against
// this build's other modules). --profile adds a one-thread run under the V8 profiler that splits
// encodeTextCpu's time into the threaded GEMMs, the threaded steps (step-threads.ts) and what runs
// on the calling thread alone, the part that bounds the time on many cores.
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildClassTextFeatures, DEFAULT_TEMPLATE } from "@unmask/clip";
import { encodeTextCpu, loadModelDir } from "../dist/index.js";
import { importAtRevision } from "./lib/baseline.mjs";

const BASELINE = "5ce378b";
const args = process.argv.slice(2);
const quick = args[0] === "--quick";
const profile = args.includes("--profile");
const beforeAt = args.indexOf("--before");
const beforeRevision = beforeAt >= 0 ? args[beforeAt + 1] : undefined;
const numbers = (quick ? args.slice(1) : args)
  .filter((a, i, all) => !a.startsWith("--") && all[i - 1] !== "--before")
  .map(Number);
const classes = numbers[0] ?? 1000;
const quickThreads = numbers.slice(1);
const here = dirname(fileURLToPath(import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "unmask-text-bench-"));

/** Seeded normal draws (LCG + Box-Muller). */
function normals(seed) {
  let s = seed >>> 0 || 1;
  const uniform = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** ViT-B/16's text tower with OpenAI's init scales (LayerNorms at 1 / 0). */
async function vitB16Text() {
  const { VIT_B16_CONFIG: config, vitTensorShapes } = await import(
    pathToFileURL(join(here, "../../convert/dist/testing/index.js")).href
  );
  const W = config.transformerWidth;
  const random = normals(1);
  const text = new Map();
  for (const [name, shape] of vitTensorShapes(config)) {
    if (name.startsWith("visual.") || name === "logit_scale") continue;
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (/ln_.*\.weight$/.test(name)) data.fill(1);
    else if (!name.endsWith(".bias")) {
      const std = name.includes("c_proj")
        ? (4 * W) ** -0.5
        : name === "token_embedding.weight"
          ? 0.02
          : W ** -0.5;
      for (let i = 0; i < data.length; i++) data[i] = std * random();
    }
    text.set(name, { shape, data });
  }
  return { text, config };
}

async function nanoClip() {
  const { convert } = await import(pathToFileURL(join(here, "../../convert/dist/index.js")).href);
  const dir = join(scratch, "nano-clip");
  await convert(join(here, "../../cli/assets/demo/nano-clip.jit.pt"), dir, { overwrite: true, onnx: false });
  const model = await loadModelDir(dir);
  return { text: model.text, config: model.config };
}

function maxRelativeDifference(a, b) {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

async function features(model, classNames, encode, options) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const data = await buildClassTextFeatures({
    classNames,
    templates: [DEFAULT_TEMPLATE],
    contextLength: model.config.contextLength,
    encodeText: async (ids, count) => encode(model, ids, count, options),
  });
  const cpu = process.cpuUsage(cpu0);
  return { data, seconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

const threads = availableParallelism();
// --distinct: seeded random lower-case words instead of n00000000.. (whose digits, one token each,
// let the prompts of a chunk share up to 12 of their 16 positions: only the template's 5 then)
const letters = normals(7);
const names = Array.from({ length: classes }, (_, i) =>
  args.includes("--distinct")
    ? Array.from({ length: 8 }, () =>
        String.fromCharCode(97 + (Math.floor(Math.abs(letters()) * 1e6) % 26)),
      ).join("")
    : `n${String(i).padStart(8, "0")}`,
);

if (quick) {
  const model = await vitB16Text();
  const counts = quickThreads.length > 0 ? quickThreads : [1, threads];
  const impls = [["this build", encodeTextCpu]];
  if (beforeRevision)
    impls.unshift([
      `text-encoder.ts of ${beforeRevision}`,
      (await importAtRevision(beforeRevision, "text-encoder.ts")).encodeTextCpu,
    ]);
  console.log(
    `ViT-B/16 text tower (random weights): ${classes} classes x 1 template, threads ${counts.join(", ")}`,
  );
  let first;
  for (const [label, encode] of impls) {
    console.log(` ${label}`);
    for (const n of counts) {
      await features(model, names.slice(0, 8), encode, { threads: n }); // builds the tower
      const run = await features(model, names, encode, { threads: n });
      first ??= run;
      let diff = 0;
      for (let i = 0; i < run.data.length; i++) diff = Math.max(diff, Math.abs(run.data[i] - first.data[i]));
      console.log(
        `  ${`${n} thread${n === 1 ? "" : "s"}`.padEnd(12)} ${run.seconds.toFixed(2).padStart(7)} s (CPU ${run.cpuSeconds.toFixed(2).padStart(6)} s)  ${(classes / run.seconds).toFixed(1).padStart(8)} prompts/s  max |diff| to the first run ${diff}`,
      );
    }
    if (profile) {
      await features(model, names.slice(0, 8), encode, { threads: 1 });
      const split = await profiled(() => features(model, names, encode, { threads: 1 }));
      const parallel = split.gemm + split.steps;
      console.log(
        `  profile, 1 thread: GEMMs ${split.gemm.toFixed(2)} s, threaded steps ${split.steps.toFixed(2)} s, calling thread only ${split.serial.toFixed(2)} s (${((100 * split.serial) / (parallel + split.serial)).toFixed(1)}% of encodeTextCpu); at 16 threads by Amdahl ${(split.serial + parallel / 16).toFixed(2)} s`,
      );
    }
  }
  rmSync(scratch, { recursive: true, force: true });
  process.exit(0);
}

/**
 * Runs `body` under the V8 sampling profiler and splits the samples inside encodeTextCpu: the
 * GEMMs of the linear layers (gemm() outside attention: split over threads), the step jobs
 * (StepThreads.run: split over threads), and the rest, which runs on the calling thread alone.
 */
async function profiled(body) {
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
  await session.post("Profiler.start");
  await body();
  const { profile: p } = await session.post("Profiler.stop");
  session.disconnect();
  const byId = new Map(p.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of p.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const split = { gemm: 0, steps: 0, serial: 0 };
  for (let i = 0; i < p.samples.length; i++) {
    const seconds = (p.timeDeltas[i + 1] ?? 0) / 1e6;
    const chain = [];
    for (let id = p.samples[i]; id !== undefined; id = parent.get(id))
      chain.push(byId.get(id).callFrame.functionName);
    if (!chain.includes("encodeTextCpu")) continue;
    if (chain.includes("runTask") || chain.includes("run")) split.steps += seconds;
    else if (chain.includes("gemm") && !chain.includes("attentionForward")) split.gemm += seconds;
    else split.serial += seconds;
  }
  return split;
}

const before = (await importAtRevision(BASELINE, "text-encoder.ts")).encodeTextCpu;
const fashion = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];
try {
  for (const [label, load, sets] of [
    ["ViT-B/16 text tower (random weights)", vitB16Text, [names]],
    ["nano-clip", nanoClip, [names, fashion]],
  ]) {
    const model = await load();
    const { transformerWidth: W, transformerLayers: layers, transformerHeads: heads } = model.config;
    for (const classNames of sets) {
      console.log(
        `${label} (width ${W}, ${heads} heads, ${layers} layers): ${classNames.length} classes x 1 template ("${DEFAULT_TEMPLATE}")`,
      );
      const runs = [
        ["before", await features(model, classNames, before)],
        ["after, 1 thread", await features(model, classNames, encodeTextCpu, { threads: 1 })],
        [`after, ${threads} threads`, await features(model, classNames, encodeTextCpu, { threads })],
      ];
      const base = runs[0][1];
      for (const [name, run] of runs)
        console.log(
          `  ${name.padEnd(20)} ${run.seconds.toFixed(2).padStart(7)} s (CPU ${run.cpuSeconds.toFixed(2).padStart(6)} s)  ${(classNames.length / run.seconds).toFixed(1).padStart(8)} prompts/s  x${(base.seconds / run.seconds).toFixed(2)}` +
            (run === base
              ? ""
              : `  max |diff| / max |before| ${maxRelativeDifference(run.data, base.data).toExponential(1)}`),
        );
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
