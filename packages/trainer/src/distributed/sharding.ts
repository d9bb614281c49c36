/**
 * How one global batch is split across ranks so that N GPUs compute what one GPU would.
 *
 * Every rank runs the same EpochSampler (same seed: same permutation, crop boxes and flips) and
 * draws the whole global batch of B images; rank r keeps rows [floor(rB/N), floor((r+1)B/N)).
 * The engine's losses are means over its own rows, so its gradients are (1/n_r) sum over its
 * rows. The single-GPU gradient is (1/B) sum over all rows = sum_r (n_r/B) x (rank r's
 * gradient): each rank pre-multiplies by its weight n_r/B before the all-reduce's sum. With
 * equal shards that weight is 1/N, the plain mean (ncclAvg); with unequal shards a naive mean
 * would over-weight the small shards. The weights sum to 1, so the regulariser's gradient
 * (identical on every rank, since the scores are) comes through unchanged.
 */
import { UnmaskError } from "@unmask/clip";
import type { StepResult, TrainBatch } from "../engine.js";

export interface ShardRange {
  rank: number;
  /** First row of the global batch this rank takes. */
  start: number;
  /** One past the last row. */
  end: number;
  /** end - start. */
  size: number;
}

/** Rank `rank`'s rows of a global batch of `globalBatch`. @throws UnmaskError BATCH_TOO_SMALL, BAD_OPTION */
export function shardRange(globalBatch: number, worldSize: number, rank: number): ShardRange {
  if (!(Number.isSafeInteger(worldSize) && worldSize >= 1))
    throw new UnmaskError("BAD_OPTION", `world size ${worldSize} must be a positive integer`, {
      subject: "gpus",
    });
  if (!(Number.isSafeInteger(rank) && rank >= 0 && rank < worldSize))
    throw new UnmaskError("BAD_OPTION", `rank ${rank} is outside 0..${worldSize - 1}`, { subject: "RANK" });
  if (!(Number.isSafeInteger(globalBatch) && globalBatch >= worldSize))
    throw new UnmaskError(
      "BATCH_TOO_SMALL",
      `a batch of ${globalBatch} images cannot give each of ${worldSize} GPUs at least one; use a batch of at least ${worldSize} or fewer GPUs`,
      { subject: "batchSize" },
    );
  const start = Math.floor((rank * globalBatch) / worldSize);
  const end = Math.floor(((rank + 1) * globalBatch) / worldSize);
  return { rank, start, end, size: end - start };
}

/** Every rank's rows, in rank order. */
export function shardRanges(globalBatch: number, worldSize: number): ShardRange[] {
  return Array.from({ length: worldSize }, (_, rank) => shardRange(globalBatch, worldSize, rank));
}

/** The pre-multiplier of this rank's gradients in the all-reduce: its share of the global batch. */
export function reduceWeight(range: ShardRange, globalBatch: number): number {
  return range.size / globalBatch;
}

/** Rank's rows of a global batch (labels, and crops or pixels). Views where possible, no copies of pixels. */
export function shardBatch(batch: TrainBatch, range: ShardRange): TrainBatch {
  const B = batch.labels.length;
  if (range.end > B)
    throw new UnmaskError("BAD_BATCH", `rows ${range.start}..${range.end} of a batch of ${B}`, {
      subject: "batch",
    });
  const { start, end } = range;
  const out: TrainBatch = { labels: batch.labels.subarray(start, end) };
  if (batch.crops) {
    const { indices, boxes, flips } = batch.crops;
    out.crops = {
      indices: indices.subarray(start, end),
      boxes: boxes.subarray(4 * start, 4 * end),
      flips: flips.subarray(start, end),
    };
  }
  if (batch.pixels) {
    const perImage = batch.pixels.length / B;
    if (!Number.isInteger(perImage))
      throw new UnmaskError("BAD_SHAPE", `batch.pixels holds ${batch.pixels.length} values for ${B} images`, {
        subject: "batch.pixels",
      });
    out.pixels = batch.pixels.subarray(perImage * start, perImage * end);
  }
  return out;
}

/**
 * What the single-GPU step would report, from every rank's result: losses weighted by shard
 * (they are batch means), correct counts summed, the regulariser (equal everywhere) taken once.
 */
export function combineShardResults(
  results: readonly StepResult[],
  ranges: readonly ShardRange[],
): StepResult {
  if (results.length !== ranges.length || results.length === 0)
    throw new UnmaskError("BAD_OPTION", `${results.length} step results for ${ranges.length} shards`, {
      subject: "results",
    });
  const total = ranges.reduce((a, r) => a + r.size, 0);
  let lossCe = 0;
  let lossKl = 0;
  let correct = 0;
  results.forEach((r, i) => {
    lossCe += (ranges[i].size / total) * r.lossCe;
    lossKl += (ranges[i].size / total) * r.lossKl;
    correct += r.correct;
  });
  return { lossCe, lossKl, lossReg: results[0].lossReg, correct };
}
