// Full R-AMT step throughput of the cpu engine on nano-clip (32 px, patch 4 -> 65 tokens, width
// 128, 2 heads, 4 layers; masks on the patch embedding and attention in/out of every block;
// 10 classes) at batch 32, on 1 thread and on all of them. Uses the real model when
// @unmask/convert is built (converted from packages/cli/assets/demo/nano-clip.jit.pt into a temp
// folder), else random weights of the same shape. Run after `pnpm build`:
//   node bench/cpu-step.mjs [steps=8] [batch=32]
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomImages, randomVitModel } from "../dist/engines/cpu/index.js";
import { createCpuEngine, DEFAULT_HYPER, loadModelDir } from "../dist/index.js";

const steps = Number(process.argv[2] ?? 8);
const batch = Number(process.argv[3] ?? 32);
const here = dirname(fileURLToPath(import.meta.url));

async function nanoClip() {
  const random = randomVitModel({
    resolution: 32,
    patch: 4,
    width: 128,
    layers: 4,
    embed: 128,
    classes: 10,
    seed: 1,
  });
  const convertDist = join(here, "../../convert/dist/index.js");
  const jit = join(here, "../../cli/assets/demo/nano-clip.jit.pt");
  if (!existsSync(convertDist) || !existsSync(jit)) return { model: random, source: "random weights" };
  const dir = join(mkdtempSync(join(tmpdir(), "unmask-bench-")), "nano-clip");
  try {
    const { convert } = await import(convertDist);
    await convert(jit, dir, { overwrite: true, onnx: false });
    const loaded = await loadModelDir(dir);
    const E = loaded.config.embedDim;
    const textFeatures = randomVitModel({
      resolution: 8,
      patch: 4,
      width: 16,
      layers: 1,
      embed: E,
      classes: 10,
    }).textFeatures;
    const model = {
      ...random,
      config: loaded.config,
      weights: loaded.vision,
      textFeatures,
      logitScale: loaded.logitScale,
    };
    model.maskedTensors = random.maskedTensors;
    return { model, source: `nano-clip.jit.pt (converted; embed ${E})` };
  } catch (error) {
    return { model: random, source: `random weights (convert failed: ${error.message})` };
  } finally {
    rmSync(dirname(dir), { recursive: true, force: true });
  }
}

const { model, source } = await nanoClip();
const images = randomImages(batch, 32, 3);
const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);

// FLOPs per image: forward = patch embedding + per block (qkv, attention, out_proj, MLP); the
// last block runs its qkv on every row and the rest for the class row alone (vit.ts)
const N = 65;
const D = 128;
const block = 2 * N * D * 3 * D + 2 * 2 * N * N * D + 2 * N * D * D + 2 * 2 * N * D * 4 * D;
const lastBlock = 2 * N * D * 3 * D + 2 * 2 * N * D + 2 * D * D + 2 * 2 * D * 4 * D;
const forwardFlop = 2 * 64 * 48 * D + 3 * block + lastBlock;
// step = student + teacher forward + activation gradients of 2 signals + masked weight gradients of 2 signals
const maskedFlop =
  2 * 64 * 48 * D + 3 * (2 * N * D * 3 * D + 2 * N * D * D) + (2 * N * D * 3 * D + 2 * D * D);
const stepFlop = 4 * forwardFlop + 2 * maskedFlop;

console.log(
  `cpu engine step, nano-clip shape (${source}), batch ${batch}, ${(stepFlop / 1e9).toFixed(2)} GFLOP per image`,
);
for (const threads of [1, availableParallelism()]) {
  const engine = await createCpuEngine(model, { maxBatch: batch, hyper: DEFAULT_HYPER, seed: 1, threads });
  await engine.step({ labels, pixels: images }, { lr: 8e-5, step: 0 }); // warm-up (JIT, workers)
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let s = 1; s <= steps; s++) await engine.step({ labels, pixels: images }, { lr: 8e-5, step: s });
  const stepSeconds = (performance.now() - t0) / 1000 / steps;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6 / steps;
  const t1 = performance.now();
  await engine.forward(images, batch);
  const forwardSeconds = (performance.now() - t1) / 1000;
  await engine.dispose();
  console.log(
    `  threads ${threads}: step ${(stepSeconds * 1000).toFixed(0)} ms = ${(batch / stepSeconds).toFixed(1)} images/s` +
      ` (~${((stepFlop * batch) / stepSeconds / 1e9).toFixed(1)} GFLOP/s; ${(cpuSeconds * 1000).toFixed(0)} ms CPU per step);` +
      ` inference ${(batch / forwardSeconds).toFixed(0)} images/s`,
  );
}
