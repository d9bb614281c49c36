/**
 * One rank of the data-parallel device checks (data-parallel.ts starts one per GPU through
 * launchWorkers; the GPU test src/engines/cuda/data-parallel.gpu.test.ts bundles this file too).
 *   DP_MODE=check  a random ViT (width 128, 2 blocks, conv1 + attention masked), global batch 7,
 *                  4 steps: the first step's reduced gradients and losses, the final scores and
 *                  their digest. In a world of 2 the ranks step on 3 and 4 rows, so the all-reduce
 *                  weights them 3/7 and 4/7.
 *   DP_MODE=bench  the ViT-B/16 step of main.ts's bench at DP_BATCH images a rank: 3 warm-up
 *                  steps, then DP_STEPS timed ones started together (a gather is the barrier).
 */
import { joinDataParallel, tensorsDigest } from "../../src/distributed/data-parallel.js";
import { Nccl } from "../../src/distributed/nccl.js";
import type { Rendezvous } from "../../src/distributed/rendezvous.js";
import { runWorker } from "../../src/distributed/worker.js";
import { DEFAULT_HYPER } from "../../src/engine.js";
import { randomImages, randomVitModel } from "../../src/engines/cpu/random-model.js";
import { createCudaEngine } from "../../src/engines/cuda/engine.js";
import { benchBatches, benchCache, benchEngine, vitB16 } from "./bench-model.js";
import { benchPrecision } from "./with-env.js";

export interface CheckRankResult {
  lossCe: number;
  lossKl: number;
  grads: Record<string, { ce: number[]; kl: number[] }>;
  scores: Record<string, number[]>;
  digest: string;
}

export interface BenchRankResult {
  batch: number;
  steps: number;
  ms: number;
  digest: string;
}

const nccl = await Nccl.open();
await runWorker(
  async ({ world, rendezvous }) =>
    process.env.DP_MODE === "bench" ? bench(rendezvous, world.worldSize) : check(rendezvous),
  { createUniqueId: () => nccl.getUniqueId() },
);

async function check(rendezvous: Rendezvous): Promise<CheckRankResult> {
  const B = 7;
  const STEPS = 4;
  const model = randomVitModel({
    resolution: 32,
    patch: 8,
    width: 128,
    layers: 2,
    embed: 64,
    classes: 10,
    seed: 3,
  });
  const per = 3 * 32 * 32;
  const pixels = randomImages(STEPS * B, 32, 5);
  const batch = (k: number) => ({
    labels: Int32Array.from({ length: B }, (_, i) => (k * B + i) % 10),
    pixels: pixels.subarray(k * B * per, (k + 1) * B * per),
  });
  const dp = await joinDataParallel({ rendezvous, globalBatch: B, nccl });
  const engine = await createCudaEngine(model, {
    maxBatch: B,
    hyper: DEFAULT_HYPER,
    seed: 11,
    distributed: dp.engineOptions,
    ...benchPrecision(),
  });
  try {
    dp.assertEngineJoined(engine.name);
    // an eighth of the weights switched off (scores below the threshold), the same on every rank: with
    // all weights kept the student is the teacher, and the KL gradient is 0 up to rounding
    const state = await engine.getState();
    for (const scores of state.scores.values())
      for (let i = 0; i < scores.length; i++)
        if (Math.imul(i, 0x9e3779b1) >>> 28 < 2) scores[i] = DEFAULT_HYPER.threshold - 1e-3;
    await engine.setState(state);
    const weight = (dp.range.end - dp.range.start) / B;
    const first = await engine.step(dp.shard(batch(0)), { lr: 8e-5, step: 0, debug: true });
    for (let k = 1; k < STEPS; k++) await engine.step(dp.shard(batch(k)), { lr: 8e-5, step: k });
    const { scores } = await engine.getState();
    await dp.checkReplicas("end", scores);
    const grads: CheckRankResult["grads"] = {};
    for (const [name, g] of first.debug?.grads ?? []) grads[name] = { ce: [...g.ce], kl: [...g.kl] };
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
}

async function bench(rendezvous: Rendezvous, worldSize: number): Promise<BenchRankResult> {
  const perRank = Number(process.env.DP_BATCH ?? 256);
  const steps = Number(process.env.DP_STEPS ?? 20);
  const dp = await joinDataParallel({ rendezvous, globalBatch: perRank * worldSize, nccl });
  const engine = await benchEngine(vitB16(100), perRank, benchCache(), dp.engineOptions);
  try {
    dp.assertEngineJoined(engine.name);
    const { labels, makeCrops } = benchBatches(perRank * worldSize);
    const step = (s: number) => engine.step(dp.shard({ labels, crops: makeCrops(s) }), { lr: 8e-5, step: s });
    for (let s = 0; s < 3; s++) await step(s);
    await dp.gather("start", 0);
    const t0 = performance.now();
    for (let s = 3; s < 3 + steps; s++) await step(s);
    const ms = performance.now() - t0;
    const { scores } = await engine.getState();
    await dp.checkReplicas("end", scores);
    return { batch: perRank, steps, ms, digest: tensorsDigest(scores) };
  } finally {
    await engine.dispose();
    dp.dispose();
  }
}
