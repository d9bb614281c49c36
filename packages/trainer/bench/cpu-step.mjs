// Full R-AMT step throughput of the cpu engine on a nano-clip-shaped model (32 px, patch 4 ->
// 65 tokens, width 128, 2 heads, 4 layers, embed 128, 10 classes; masks on the patch embedding and
// attention in/out of every block) at batch 32. Random weights unless a converted nano-clip model
// directory is given. Run after `pnpm build`:
//   node bench/cpu-step.mjs [steps=8] [batch=32]

import { randomImages, randomVitModel } from "../dist/engines/cpu/index.js";
import { createCpuEngine, DEFAULT_HYPER } from "../dist/index.js";

const steps = Number(process.argv[2] ?? 8);
const batch = Number(process.argv[3] ?? 32);
const model = randomVitModel({
  resolution: 32,
  patch: 4,
  width: 128,
  layers: 4,
  embed: 128,
  classes: 10,
  seed: 1,
});
const engine = await createCpuEngine(model, { maxBatch: batch, hyper: DEFAULT_HYPER, seed: 1 });
const images = randomImages(batch, 32, 3);
const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);

await engine.step({ labels, pixels: images }, { lr: 8e-5, step: 0 }); // warm-up (JIT)
const t0 = performance.now();
for (let s = 1; s <= steps; s++) await engine.step({ labels, pixels: images }, { lr: 8e-5, step: s });
const stepSeconds = (performance.now() - t0) / 1000 / steps;

const t1 = performance.now();
await engine.forward(images, batch);
const forwardSeconds = (performance.now() - t1) / 1000;
await engine.dispose();

// FLOPs per image: forward = patch embedding + per block (qkv, attention, out_proj, MLP)
const N = 65;
const D = 128;
const block = 2 * N * D * 3 * D + 2 * 2 * N * N * D + 2 * N * D * D + 2 * 2 * N * D * 4 * D;
const forward = 2 * 64 * 48 * D + 4 * block;
// step = student + teacher forward + activation gradients of 2 signals + masked weight gradients of 2 signals
const masked = 2 * 64 * 48 * D + 4 * (2 * N * D * 3 * D + 2 * N * D * D);
const stepFlop = 2 * forward + 2 * forward + 2 * masked;
console.log(`cpu engine, nano-clip shape, batch ${batch}`);
console.log(
  `  step: ${(stepSeconds * 1000).toFixed(1)} ms  ${(batch / stepSeconds).toFixed(1)} images/s  ~${((stepFlop * batch) / stepSeconds / 1e9).toFixed(1)} GFLOP/s (${(stepFlop / 1e9).toFixed(2)} GFLOP per image)`,
);
console.log(`  forward (inference): ${(batch / forwardSeconds).toFixed(1)} images/s`);
