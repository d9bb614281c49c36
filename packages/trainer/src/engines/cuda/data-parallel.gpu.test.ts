/**
 * The cuda engine as two ranks (`pnpm test:gpu` on a host with at least 2 GPUs). NOT YET RUN: it
 * was written without GPU time, alongside the engine's reducer calls (model.ts), as the check to
 * run first on a multi-GPU machine.
 *
 * The same worker runs as a world of 1 (the single-GPU reference: no reducer, the step replayed
 * from a CUDA graph after the first, debug step) and as a world of 2 (each rank steps on its 3 or
 * 4 rows of a global batch of 7, so the all-reduce uses the PreMulSum weights 3/7 and 4/7).
 * Four steps on a seeded random ViT (width 128, 2 blocks, conv1 + attention masked). Checks:
 *   both ranks end with bit-identical scores (checkReplicas inside, digests here): the invariant;
 *   the first step's reduced gradients equal the single-GPU full-batch ones within 1e-2 (norm
 *     error): the forward per image is the same bf16 arithmetic, but cuBLAS may pick other
 *     kernels for 3-4 rows than for 7 and two fp32 partial sums round differently from one;
 *   the weighted shard losses add up to the single-GPU loss within 1e-3 (relative);
 *   >= 98% of the final scores within 1e-6 of the single-GPU ones (the rest: gradient-dropout
 *     decisions or Adam signs of near-zero gradients that the rounding above flips).
 * Skips (with the reason) without 2 GPUs, libcuda or libnccl.
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { agreement, normError } from "../../../bench/device/fixture.js";
import { bundleChild } from "../../../test/bundle-child.js";
import { multiGpuUnavailable } from "../../../test/multi-gpu-probe.js";
import { launchWorkers } from "../../distributed/launcher.js";

const here = dirname(fileURLToPath(import.meta.url));
const GPUS = 2;

const unavailable = await multiGpuUnavailable(GPUS);
if (unavailable) console.warn(`cuda data-parallel tests skipped: ${unavailable}`);

const WORKER = `
import { joinDataParallel, tensorsDigest } from "../../distributed/data-parallel.ts";
import { Nccl } from "../../distributed/nccl.ts";
import { runWorker } from "../../distributed/worker.ts";
import { DEFAULT_HYPER } from "../../engine.ts";
import { randomImages, randomVitModel } from "../cpu/random-model.ts";
import { createCudaEngine } from "./engine.ts";

const B = 7;
const STEPS = 4;
const nccl = await Nccl.open();
await runWorker(async ({ world, rendezvous }) => {
  const model = randomVitModel({ resolution: 32, patch: 8, width: 128, layers: 2, embed: 64, classes: 10, seed: 3 });
  const per = 3 * 32 * 32;
  const pixels = randomImages(STEPS * B, 32, 5);
  const batch = (k) => ({
    labels: Int32Array.from({ length: B }, (_, i) => (k * B + i) % 10),
    pixels: pixels.subarray(k * B * per, (k + 1) * B * per),
  });
  const dp = await joinDataParallel({ rendezvous, globalBatch: B, nccl });
  const engine = await createCudaEngine(model, {
    maxBatch: B, hyper: DEFAULT_HYPER, seed: 11, distributed: dp.engineOptions,
  });
  try {
    dp.assertEngineJoined(engine.name);
    const weight = (dp.range.end - dp.range.start) / B;
    const first = await engine.step(dp.shard(batch(0)), { lr: 8e-5, step: 0, debug: true });
    for (let k = 1; k < STEPS; k++) await engine.step(dp.shard(batch(k)), { lr: 8e-5, step: k });
    const { scores } = await engine.getState();
    await dp.checkReplicas("end", scores);
    const grads = {};
    for (const [name, g] of first.debug.grads) grads[name] = { ce: [...g.ce], kl: [...g.kl] };
    return {
      lossCe: weight * first.lossCe,
      lossKl: weight * first.lossKl,
      grads,
      scores: Object.fromEntries([...scores].map(([name, s]) => [name, [...s]])),
      digest: tensorsDigest(scores),
    };
  } finally {
    await engine.dispose();
    dp.dispose();
  }
}, { createUniqueId: () => nccl.getUniqueId() });
`;

interface RankResult {
  lossCe: number;
  lossKl: number;
  grads: Record<string, { ce: number[]; kl: number[] }>;
  scores: Record<string, number[]>;
  digest: string;
}

describe.skipIf(unavailable !== "")("cuda engine on 2 GPUs", () => {
  it("steps like one GPU on the whole batch, with identical replicas", async () => {
    const entry = await bundleChild(WORKER, here);
    const run = async (gpus: number) =>
      (
        await launchWorkers<unknown, RankResult>({
          gpus,
          entry,
          execArgv: [],
          onOutput: (l) => console.log(`[${gpus} GPUs, rank ${l.rank}] ${l.line}`),
        })
      ).results;
    const [single] = await run(1);
    const world = await run(GPUS);
    expect(world[1].digest).toBe(world[0].digest);
    const f = (a: number[]) => Float32Array.from(a);
    for (const [name, g] of Object.entries(single.grads)) {
      expect(normError(f(world[0].grads[name].ce), f(g.ce)), `${name} ce`).toBeLessThan(1e-2);
      expect(normError(f(world[0].grads[name].kl), f(g.kl)), `${name} kl`).toBeLessThan(1e-2);
    }
    for (const key of ["lossCe", "lossKl"] as const) {
      const sum = world[0][key] + world[1][key];
      expect(Math.abs(sum - single[key]) / single[key], key).toBeLessThan(1e-3);
    }
    for (const [name, s] of Object.entries(single.scores))
      expect(agreement(f(world[0].scores[name]), f(s), 1e-6), name).toBeGreaterThan(0.98);
  }, 300_000);
});
