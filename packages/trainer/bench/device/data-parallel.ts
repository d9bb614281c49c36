/**
 * The data-parallel checks on a host with several GPUs: dp-worker.ts's ranks started through
 * launchWorkers (one process a GPU, NCCL between them), as a world of 1 and as a world of `gpus`.
 *   dataParallelCheck   a world of `gpus` against one GPU on the same global batch: replica
 *                       digests, the first step's reduced gradients, losses, the final scores;
 *   dataParallelBench   the ViT-B/16 step at `perGpu` images a GPU on 1 and on `gpus` GPUs:
 *                       images a second and the scaling efficiency (gpus x 1-GPU rate = 100%);
 *   ncclReduceCheck     nccl-worker.ts's exact weighted all-reduce of a ViT-B/16 gradient buffer.
 */
import { launchWorkers } from "../../src/distributed/launcher.js";
import type { BenchRankResult, CheckRankResult } from "./dp-worker.js";
import { agreement, normError } from "./fixture.js";
import type { ReduceRankResult } from "./nccl-worker.js";

async function runWorld<R>(entry: string, gpus: number, env: Record<string, string>): Promise<R[]> {
  const { results } = await launchWorkers<unknown, R>({
    gpus,
    entry,
    execArgv: [],
    env,
    onOutput: (l) => console.error(`[${gpus} GPUs, rank ${l.rank}] ${l.line}`),
  });
  return results;
}

export interface DataParallelCheck {
  gpus: number;
  /** Ranks whose final scores' digest differs from rank 0's (the invariant: 0). */
  replicasDiffering: number;
  /** Largest norm error of rank 0's reduced first-step gradients against one GPU's. */
  gradNormError: number;
  /** The same per tensor and loss ("<tensor>.ce"). */
  gradNormErrors: Record<string, number>;
  /** Largest relative error of the weighted shard losses' sum against one GPU's loss. */
  lossError: number;
  /** Smallest share of a tensor's final scores within 1e-6 of one GPU's. */
  scoresAgreement: number;
  /** Final scores bit for bit equal to one GPU's, over all tensors. */
  scoresIdentical: number;
  scoresTotal: number;
  /** Largest |score - one GPU's score|, and the share within a tenth of a learning-rate step (8e-6). */
  scoresMaxDifference: number;
  scoresWithinTenthStep: number;
}

export async function dataParallelCheck(entry: string, gpus: number): Promise<DataParallelCheck> {
  const env = { DP_MODE: "check" };
  const [single] = await runWorld<CheckRankResult>(entry, 1, env);
  const world = await runWorld<CheckRankResult>(entry, gpus, env);
  const f = (a: number[]) => Float32Array.from(a);
  const gradNormErrors: Record<string, number> = {};
  for (const [name, g] of Object.entries(single.grads))
    for (const kind of ["ce", "kl"] as const)
      gradNormErrors[`${name}.${kind}`] = normError(f(world[0].grads[name][kind]), f(g[kind]));
  const gradNormError = Math.max(...Object.values(gradNormErrors));
  let lossError = 0;
  for (const key of ["lossCe", "lossKl"] as const) {
    const sum = world.reduce((a, r) => a + r[key], 0);
    lossError = Math.max(lossError, Math.abs(sum - single[key]) / single[key]);
  }
  let scoresAgreement = 1;
  let scoresIdentical = 0;
  let scoresTotal = 0;
  let scoresMaxDifference = 0;
  let withinTenthStep = 0;
  for (const [name, s] of Object.entries(single.scores)) {
    const got = world[0].scores[name];
    scoresAgreement = Math.min(scoresAgreement, agreement(f(got), f(s), 1e-6));
    for (let i = 0; i < s.length; i++) {
      const d = Math.abs(Math.fround(got[i]) - Math.fround(s[i]));
      if (d === 0) scoresIdentical++;
      if (d <= 8e-6) withinTenthStep++;
      scoresMaxDifference = Math.max(scoresMaxDifference, d);
    }
    scoresTotal += s.length;
  }
  return {
    gpus,
    replicasDiffering: world.filter((r) => r.digest !== world[0].digest).length,
    gradNormError,
    gradNormErrors,
    lossError,
    scoresAgreement,
    scoresIdentical,
    scoresTotal,
    scoresMaxDifference,
    scoresWithinTenthStep: withinTenthStep / scoresTotal,
  };
}

export interface DataParallelBench {
  gpus: number;
  perGpu: number;
  imgPerS1: number;
  imgPerS: number;
  /** imgPerS / (gpus x imgPerS1). */
  efficiency: number;
  replicasDiffering: number;
}

export async function dataParallelBench(
  entry: string,
  gpus: number,
  perGpu: number,
  steps: number,
): Promise<DataParallelBench> {
  const env = { DP_MODE: "bench", DP_BATCH: String(perGpu), DP_STEPS: String(steps) };
  const rate = (ranks: BenchRankResult[]) =>
    (ranks.length * perGpu * steps * 1000) / Math.max(...ranks.map((r) => r.ms));
  const single = await runWorld<BenchRankResult>(entry, 1, env);
  const world = await runWorld<BenchRankResult>(entry, gpus, env);
  const imgPerS1 = rate(single);
  const imgPerS = rate(world);
  return {
    gpus,
    perGpu,
    imgPerS1: +imgPerS1.toFixed(1),
    imgPerS: +imgPerS.toFixed(1),
    efficiency: +(imgPerS / (gpus * imgPerS1)).toFixed(4),
    replicasDiffering: world.filter((r) => r.digest !== world[0].digest).length,
  };
}

export interface NcclReduceCheck extends ReduceRankResult {
  gpus: number;
  replicasDiffering: number;
  /** Algorithm bandwidth of one full reduction, GB/s. */
  gbPerS: number;
}

export async function ncclReduceCheck(entry: string, gpus: number): Promise<NcclReduceCheck> {
  const ranks = await runWorld<ReduceRankResult>(entry, gpus, {});
  const r = ranks[0];
  return {
    ...r,
    maxError: Math.max(...ranks.map((k) => k.maxError)),
    gpus,
    replicasDiffering: ranks.filter((k) => k.digest !== r.digest).length,
    gbPerS: +(r.bytes / (r.ms / 1000) / 1e9).toFixed(1),
  };
}
