/**
 * The per-epoch batch stream: a shuffle without replacement each epoch (PyTorch's RandomSampler),
 * batches of `batchSize` with drop_last only when the set holds at least one full batch (so a set
 * smaller than a batch still trains, one step per epoch; docs/rmt-method.md section 5), and for
 * every image a crop box (crop.ts) and a flip (p = 0.5), all drawn on the host from one seeded
 * stream so every engine replays the same augmentation.
 *
 * Draw order, per epoch: the permutation; then per batch, per image in batch order: the crop
 * parameters, then the flip. The whole state (generator words, epoch, position, permutation) is a
 * plain JSON object for checkpoints; restoring it continues the stream exactly.
 */
import { UnmaskError } from "@unmask/clip";
import type { CropBatch } from "../engine.js";
import { randomResizedCropBox } from "./crop.js";
import { type RandomState, SeededRandom } from "./random.js";

export interface SamplerState {
  rng: RandomState;
  /** 0-based epoch the permutation belongs to (-1 before the first epoch starts). */
  epoch: number;
  /** Next batch index inside the epoch. */
  batchInEpoch: number;
  /** The epoch's permutation of image indices (empty before the first epoch). */
  permutation: number[];
}

export interface SamplerOptions {
  /** Original width and height of each cached image (crop boxes are drawn at this size). */
  sizes: readonly { width: number; height: number }[];
  batchSize: number;
  seed: number;
}

export interface SampledBatch {
  epoch: number;
  batchInEpoch: number;
  crops: CropBatch;
}

/** Steps per epoch: floor(N / B) when N >= B (drop_last), otherwise one step of all N. */
export function stepsPerEpoch(count: number, batchSize: number): number {
  return count >= batchSize ? Math.floor(count / batchSize) : count > 0 ? 1 : 0;
}

export class EpochSampler {
  private rng: SeededRandom;
  private epoch = -1;
  private batchInEpoch = 0;
  private permutation: Int32Array = new Int32Array(0);
  readonly steps: number;

  constructor(private readonly options: SamplerOptions) {
    const { sizes, batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new UnmaskError("BAD_OPTION", `batch size ${batchSize} must be a positive integer`, {
        subject: "batchSize",
      });
    if (sizes.length === 0) throw new UnmaskError("BAD_OPTION", "no training images", { subject: "train" });
    this.rng = new SeededRandom(options.seed, "train");
    this.steps = stepsPerEpoch(sizes.length, batchSize);
  }

  /** Begins epoch `epoch` (must be the next one): draws its permutation. */
  startEpoch(epoch: number): void {
    if (epoch !== this.epoch + 1 || (this.epoch >= 0 && this.batchInEpoch < this.steps))
      throw new UnmaskError(
        "SAMPLER_ORDER",
        `epoch ${epoch} started after epoch ${this.epoch} batch ${this.batchInEpoch} of ${this.steps}`,
      );
    this.epoch = epoch;
    this.batchInEpoch = 0;
    this.permutation = this.rng.permutation(this.options.sizes.length);
  }

  /** True when the current epoch has batches left. */
  get hasNext(): boolean {
    return this.epoch >= 0 && this.batchInEpoch < this.steps;
  }

  next(): SampledBatch {
    if (!this.hasNext) throw new UnmaskError("SAMPLER_ORDER", `epoch ${this.epoch} has no batches left`);
    const { sizes, batchSize } = this.options;
    const start = this.batchInEpoch * batchSize;
    const count = Math.min(batchSize, this.permutation.length - start);
    const indices = this.permutation.slice(start, start + count);
    const boxes = new Float32Array(count * 4);
    const flips = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      const { width, height } = sizes[indices[i]];
      const box = randomResizedCropBox(this.rng, width, height);
      boxes[i * 4] = box.left / width;
      boxes[i * 4 + 1] = box.top / height;
      boxes[i * 4 + 2] = box.width / width;
      boxes[i * 4 + 3] = box.height / height;
      flips[i] = this.rng.nextFloat() < 0.5 ? 1 : 0;
    }
    const batch = { epoch: this.epoch, batchInEpoch: this.batchInEpoch, crops: { indices, boxes, flips } };
    this.batchInEpoch++;
    return batch;
  }

  getState(): SamplerState {
    return {
      rng: this.rng.getState(),
      epoch: this.epoch,
      batchInEpoch: this.batchInEpoch,
      permutation: Array.from(this.permutation),
    };
  }

  setState(state: SamplerState): void {
    const n = this.options.sizes.length;
    const perm = state.permutation;
    const valid =
      Number.isInteger(state.epoch) &&
      state.epoch >= -1 &&
      Number.isInteger(state.batchInEpoch) &&
      state.batchInEpoch >= 0 &&
      state.batchInEpoch <= this.steps &&
      (state.epoch === -1 ? perm.length === 0 : perm.length === n) &&
      perm.every((v) => Number.isInteger(v) && v >= 0 && v < n);
    if (!valid)
      throw new UnmaskError("BAD_CHECKPOINT", "sampler state does not fit this training set", {
        subject: "sampler",
      });
    this.rng = SeededRandom.fromState(state.rng);
    this.epoch = state.epoch;
    this.batchInEpoch = state.batchInEpoch;
    this.permutation = Int32Array.from(perm);
  }
}
