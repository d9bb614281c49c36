/**
 * Sharding a global batch across ranks, checked with the cpu engine: the shard-weighted sum of
 * per-shard gradients equals the full-batch gradient up to float rounding, and R-AMT steps driven
 * by combined gradients (gradient dropout with the shared Philox stream, then Adam, as every rank
 * does after the all-reduce) track the single-process run to the same mask.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_HYPER, type Engine, type EngineState, type TrainBatch } from "../engine.js";
import { createCpuEngine } from "../engines/cpu/cpu-engine.js";
import { randomImages, randomVitModel } from "../engines/cpu/random-model.js";
import { philoxUniforms } from "../random/philox.js";
import { adamUpdate } from "../rmt/adam.js";
import { gradientDropout } from "../rmt/gradient-dropout.js";
import {
  combineShardResults,
  reduceWeight,
  type ShardRange,
  shardBatch,
  shardRange,
  shardRanges,
} from "./sharding.js";

describe("shardRange", () => {
  it("splits rows [r*B/N, (r+1)*B/N) and covers the batch exactly once", () => {
    expect(shardRanges(256, 2).map((r) => [r.start, r.end])).toEqual([
      [0, 128],
      [128, 256],
    ]);
    expect(shardRanges(7, 3).map((r) => r.size)).toEqual([2, 2, 3]);
    for (const [B, N] of [
      [1, 1],
      [5, 5],
      [1000, 8],
      [13, 4],
    ]) {
      const ranges = shardRanges(B, N);
      expect(ranges[0].start).toBe(0);
      expect(ranges.at(-1)?.end).toBe(B);
      for (let r = 1; r < N; r++) expect(ranges[r].start).toBe(ranges[r - 1].end);
      expect(ranges.every((r) => r.size >= 1)).toBe(true);
      expect(ranges.reduce((a, r) => a + reduceWeight(r, B), 0)).toBeCloseTo(1, 12);
    }
  });

  it("refuses a batch smaller than the world, and a rank outside it", () => {
    expect(() => shardRange(1, 2, 0)).toThrow(
      expect.objectContaining({ code: "BATCH_TOO_SMALL", subject: "batchSize" }),
    );
    expect(() => shardRange(8, 2, 2)).toThrow(
      expect.objectContaining({ code: "BAD_OPTION", subject: "RANK" }),
    );
    expect(() => shardRange(8, 0, 0)).toThrow(
      expect.objectContaining({ code: "BAD_OPTION", subject: "gpus" }),
    );
  });
});

describe("shardBatch", () => {
  it("takes the rank's rows of labels, crops and pixels", () => {
    const batch: TrainBatch = {
      labels: Int32Array.of(0, 1, 2, 3, 4),
      crops: {
        indices: Int32Array.of(10, 11, 12, 13, 14),
        boxes: Float32Array.from({ length: 20 }, (_, i) => i),
        flips: Uint8Array.of(0, 1, 0, 1, 1),
      },
    };
    const part = shardBatch(batch, shardRange(5, 2, 1));
    expect(Array.from(part.labels)).toEqual([2, 3, 4]);
    expect(Array.from(part.crops!.indices)).toEqual([12, 13, 14]);
    expect(Array.from(part.crops!.boxes)).toEqual(Array.from({ length: 12 }, (_, i) => 8 + i));
    expect(Array.from(part.crops!.flips)).toEqual([0, 1, 1]);
    const pixels = shardBatch(
      { labels: Int32Array.of(0, 1, 2), pixels: Float32Array.of(1, 1, 2, 2, 3, 3) },
      shardRange(3, 3, 2),
    );
    expect(Array.from(pixels.pixels!)).toEqual([3, 3]);
  });

  it("combines step results the way the full batch reports them", () => {
    const ranges = shardRanges(5, 2);
    const r = combineShardResults(
      [
        { lossCe: 1, lossKl: 0.5, lossReg: 0.1, correct: 1 },
        { lossCe: 2, lossKl: 1, lossReg: 0.1, correct: 3 },
      ],
      ranges,
    );
    expect(r.lossCe).toBeCloseTo((2 * 1 + 3 * 2) / 5, 12);
    expect(r.lossKl).toBeCloseTo((2 * 0.5 + 3 * 1) / 5, 12);
    expect([r.lossReg, r.correct]).toEqual([0.1, 4]);
  });
});

// ---- the cpu engine: shards against the full batch ----

const SEED = 11;
const model = randomVitModel({
  resolution: 16,
  patch: 8,
  width: 32,
  layers: 2,
  embed: 16,
  classes: 3,
  seed: 5,
});
const B = 7;
const R = model.config.imageResolution;

function batchOf(step: number): TrainBatch {
  return {
    pixels: randomImages(B, R, 100 + step),
    labels: Int32Array.from({ length: B }, (_, i) => (i * 2 + step) % 3),
  };
}

async function engine(): Promise<Engine> {
  return createCpuEngine(model, { maxBatch: B, hyper: DEFAULT_HYPER, seed: SEED, threads: 1 });
}

const clone = (s: EngineState): EngineState => ({
  scores: new Map([...s.scores].map(([k, v]) => [k, Float32Array.from(v)])),
  adamM: new Map([...s.adamM].map(([k, v]) => [k, Float32Array.from(v)])),
  adamV: new Map([...s.adamV].map(([k, v]) => [k, Float32Array.from(v)])),
});

/** Per masked tensor: a = grad of ce + reg (after straight-through), b = grad of kl, from step({debug}). */
type Grads = Map<string, { ce: Float32Array; kl: Float32Array }>;

/** Gradients of `batch` at `state`, leaving the engine at `state` (step() also updates, so restore). */
async function gradientsAt(
  e: Engine,
  state: EngineState,
  batch: TrainBatch,
  step: number,
  lr: number,
): Promise<Grads> {
  await e.setState(state);
  const result = await e.step(batch, { lr, step, debug: true });
  await e.setState(state);
  return result.debug!.grads;
}

/** sum_r w_r x g_r in float32, as the NCCL PreMulSum all-reduce computes it (up to summation order). */
function weightedSum(parts: Grads[], weights: number[]): Grads {
  const out: Grads = new Map();
  for (const name of parts[0].keys()) {
    const n = parts[0].get(name)!.ce.length;
    const ce = new Float32Array(n);
    const kl = new Float32Array(n);
    parts.forEach((p, r) => {
      const g = p.get(name)!;
      for (let i = 0; i < n; i++) {
        ce[i] += Math.fround(weights[r] * g.ce[i]);
        kl[i] += Math.fround(weights[r] * g.kl[i]);
      }
    });
    out.set(name, { ce, kl });
  }
  return out;
}

function maxRelativeError(got: Float32Array, want: Float32Array): number {
  let scale = 0;
  let err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    err = Math.max(err, Math.abs(got[i] - want[i]));
  }
  return err / scale;
}

describe("shard gradients on the cpu engine", () => {
  it("the shard-weighted sum equals the full-batch gradient; a naive mean of unequal shards does not", async () => {
    const e = await engine();
    const state = clone(await e.getState());
    const batch = batchOf(0);
    // step 1 so that the KL gradient is not zero (at step 0 the student equals the teacher)
    await e.step(batch, { lr: 0.05, step: 0 });
    const moved = clone(await e.getState());
    const full = await gradientsAt(e, moved, batch, 1, 0.05);
    for (const N of [2, 3]) {
      const ranges = shardRanges(B, N);
      const parts: Grads[] = [];
      for (const range of ranges) parts.push(await gradientsAt(e, moved, shardBatch(batch, range), 1, 0.05));
      const combined = weightedSum(
        parts,
        ranges.map((r) => reduceWeight(r, B)),
      );
      const naive = weightedSum(
        parts,
        ranges.map(() => 1 / N),
      );
      for (const [name, want] of full) {
        // float32 sums over 7 rows in another order: a few ulps of the largest entry
        expect(maxRelativeError(combined.get(name)!.ce, want.ce)).toBeLessThan(1e-5);
        expect(maxRelativeError(combined.get(name)!.kl, want.kl)).toBeLessThan(1e-5);
        expect(maxRelativeError(naive.get(name)!.ce, want.ce)).toBeGreaterThan(1e-3);
      }
    }
    expect(state.scores.size).toBe(model.maskedTensors.length);
    await e.dispose();
  });

  it("steps driven by combined shard gradients reach the single-process mask (2 and 3 ranks)", async () => {
    const lr = 0.004; // raised so that bits cross the threshold within a few steps
    const steps = 6;
    const single = await engine();
    for (let k = 0; k < steps; k++) await single.step(batchOf(k), { lr, step: k });
    const want = await single.getState();
    const threshold = DEFAULT_HYPER.threshold;
    let switchedOff = 0;
    for (const s of want.scores.values()) for (const v of s) if (!(v > threshold)) switchedOff++;
    expect(switchedOff).toBeGreaterThan(0); // the comparison is not vacuous

    for (const N of [2, 3]) {
      const e = await engine();
      const state = clone(await e.getState()); // the replicated state every rank holds
      const ranges: ShardRange[] = shardRanges(B, N);
      for (let k = 0; k < steps; k++) {
        const batch = batchOf(k);
        const parts: Grads[] = [];
        for (const range of ranges) parts.push(await gradientsAt(e, state, shardBatch(batch, range), k, lr));
        const reduced = weightedSum(
          parts,
          ranges.map((r) => reduceWeight(r, B)),
        );
        // what every rank does after the all-reduce: same draws, same Adam
        model.maskedTensors.forEach((name, t) => {
          const { ce, kl } = reduced.get(name)!;
          const n = ce.length;
          const g = new Float32Array(n);
          gradientDropout(g, ce, kl, philoxUniforms(SEED, k, t, n), DEFAULT_HYPER.gdrLambda, n);
          adamUpdate(state.scores.get(name)!, g, state.adamM.get(name)!, state.adamV.get(name)!, n, {
            lr,
            step: k,
            beta1: DEFAULT_HYPER.adamBeta1,
            beta2: DEFAULT_HYPER.adamBeta2,
            eps: DEFAULT_HYPER.adamEps,
          });
        });
      }
      let differingBits = 0;
      let maxScoreDiff = 0;
      for (const [name, s] of want.scores) {
        const got = state.scores.get(name)!;
        for (let i = 0; i < s.length; i++) {
          if (s[i] > threshold !== got[i] > threshold) differingBits++;
          maxScoreDiff = Math.max(maxScoreDiff, Math.abs(s[i] - got[i]));
        }
      }
      // Adam's first steps move by about lr whatever the gradient's size, so rounding can only
      // matter where a gradient is at the noise level; none of this run's bits lie there.
      expect(differingBits).toBe(0);
      expect(maxScoreDiff).toBeLessThan(1e-5);
      await e.dispose();
    }
    await single.dispose();
  });
});
