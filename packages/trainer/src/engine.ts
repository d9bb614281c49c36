/**
 * The engine interface: what the R-AMT algorithm (written once, in rmt/) asks of a compute
 * backend. Two engines implement it: `cpu` (engines/cpu, Float32Array, the numerical reference)
 * and `cuda` (engines/cuda, koffi + libcuda + cuBLASLt).
 *
 * One step (docs/rmt-method.md 3-4, docs/cuda-engine.md 1):
 *   W' = [S > threshold] * W for every masked tensor
 *   student forward (keeping activations) and teacher forward (original W, keeping nothing)
 *   z = logitScale * normalize(features) @ textFeatures^T
 *   loss_ce = CE(z_s, y), loss_reg = regWeight * sum_t ||S_t||_2, loss_kl = T^2 * mean_b sum_c -p_t log softmax(z_s/T)
 *   ONE backward pass carrying both logit gradients -> grad_ce (incl. the regulariser), grad_kl per masked tensor
 *   gradient dropout: P = (sign(a) (a+b) / (|a|+|b|+1e-8) + 1) / 2, keep = P > u, g = ((1-lambda) + lambda*keep) * a
 *   Adam on S with g (no weight decay), learning rate given per step (the schedule lives in the algorithm)
 */
import type { ClipConfig } from "@unmask/clip";
import type { DistributedEngineOptions } from "./distributed/gradient-reducer.js";

export interface RmtHyper {
  /** Binarisation threshold t: keep a weight when S > t (5e-3). */
  threshold: number;
  /** Initial score of every entry (1e-2). */
  scoreInit: number;
  /** Weight of the (unsquared) L2 norm of each score tensor (1e-4). */
  regWeight: number;
  /** KL temperature T (1). */
  klTemperature: number;
  /** Teacher/student fusion alpha of the KL target (1: the target is the teacher). */
  fuseAlpha: number;
  /** Gradient-dropout strength lambda (1: dropped elements get no gradient). */
  gdrLambda: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEps: number;
}

export const DEFAULT_HYPER: RmtHyper = {
  threshold: 5e-3,
  scoreInit: 1e-2,
  regWeight: 1e-4,
  klTemperature: 1,
  fuseAlpha: 1,
  gdrLambda: 1,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEps: 1e-8,
};

export interface FloatTensor {
  shape: number[];
  data: Float32Array;
}

/** What an engine is built from. Weights are float32 copies of the frozen model. */
export interface EngineModel {
  config: ClipConfig;
  /** Every vision tensor (`visual.*`) by canonical name; the text tower is not needed here. */
  weights: Map<string, FloatTensor>;
  /** Canonical names of the masked weights, in a fixed order (the order of the scores). */
  maskedTensors: string[];
  /** Class text features [classes, embedDim], L2-normalised rows. */
  textFeatures: FloatTensor;
  /** exp(logit_scale). */
  logitScale: number;
}

/**
 * The cuda engine's 16-bit float type for activations and GEMM operands (the cpu engine computes
 * in fp32 and ignores it). bf16 has fp32's range; fp16 has 3 more bits of mantissa, holds OpenAI's
 * fp16 checkpoints exactly, and needs its loss gradients scaled (README "Precision").
 */
export type Precision = "bf16" | "fp16";

export const PRECISIONS: readonly Precision[] = ["bf16", "fp16"];

/**
 * fp16: on nano-clip and micro-clip its masks agree with the cpu engine's on 99.91-99.96% of their
 * bits, bf16's on 99.73-99.92%, and the step runs faster (README "Precision").
 */
export const DEFAULT_PRECISION: Precision = "fp16";

export interface EngineOptions {
  /** Largest batch a step or a forward will be given (engines size their buffers from it). */
  maxBatch: number;
  /** The cuda engine's 16-bit type (default DEFAULT_PRECISION). */
  precision?: Precision;
  hyper: RmtHyper;
  /** Seed of the engine's gradient-dropout random stream (Philox, see random/philox.ts). */
  seed: number;
  /**
   * Set when the engine is one rank of several (src/distributed, README "Several GPUs"): build
   * the gradient reducer with it, call tensorReady / wait in the step. Left unused, the run is
   * refused (ENGINE_NOT_DISTRIBUTED) rather than trained apart.
   */
  distributed?: DistributedEngineOptions;
}

/**
 * Few-shot images decoded once into uint8 RGB, all at one size (HWC, row-major), so that
 * augmentation can run on the engine.
 */
export interface ImageCache {
  count: number;
  height: number;
  width: number;
  /** [count, height, width, 3] uint8. */
  pixels: Uint8Array;
}

/**
 * Random resized crop + flip of cached images, parameters drawn on the host by the algorithm so
 * every engine replays the same augmentation. Boxes are in [0,1] image coordinates
 * (x0, y0, width, height); the crop is resampled bilinearly to the model resolution, flipped when
 * flips[i] is 1, scaled to [0,1] and normalised with CLIP's mean/std.
 */
export interface CropBatch {
  indices: Int32Array;
  boxes: Float32Array;
  flips: Uint8Array;
}

export interface TrainBatch {
  labels: Int32Array;
  /** Normalised pixels [B, 3, R, R]... */
  pixels?: Float32Array;
  /** ...or crops of the image cache (exactly one of the two). */
  crops?: CropBatch;
}

export interface StepOptions {
  /** Learning rate of this step (the algorithm applies the cosine schedule). */
  lr: number;
  /** 0-based global step index: Adam's bias correction uses step + 1; Philox is keyed by it. */
  step: number;
  /** Test hook: explicit gradient-dropout draws per masked tensor instead of Philox. */
  uniforms?: Map<string, Float32Array>;
  /** Return logits and per-tensor gradients (slow; for tests). */
  debug?: boolean;
}

export interface StepDebug {
  studentLogits: Float32Array;
  teacherLogits: Float32Array;
  /** Per masked tensor: grad of ce+reg, grad of kl, gradient after dropout. */
  grads: Map<string, { ce: Float32Array; kl: Float32Array; gdr: Float32Array }>;
}

export interface StepResult {
  lossCe: number;
  lossKl: number;
  lossReg: number;
  /** Samples whose student argmax equals the label. */
  correct: number;
  debug?: StepDebug;
}

/** Scores and Adam moments: everything that a checkpoint must hold besides the step counter. */
export interface EngineState {
  scores: Map<string, Float32Array>;
  adamM: Map<string, Float32Array>;
  adamV: Map<string, Float32Array>;
}

export interface Engine {
  readonly name: "cpu" | "cuda";
  setImageCache(cache: ImageCache): Promise<void>;
  step(batch: TrainBatch, options: StepOptions): Promise<StepResult>;
  /**
   * Student (masked, current scores) or teacher logits [count, classes] for normalised pixels
   * [count, 3, R, R]; `features` returns the unnormalised image embeddings instead [count, E].
   */
  forward(
    pixels: Float32Array,
    count: number,
    options?: { teacher?: boolean; output?: "logits" | "features" },
  ): Promise<Float32Array>;
  /**
   * Scores and Adam moments, copied: later steps do not change what it returned. Given `into` (a
   * state it returned before, no longer in use), an engine may fill those arrays and return them
   * instead of allocating (train() reuses one set for every checkpoint: fresh memory costs page
   * faults, ~0.2 s for ViT-B/16's 350 MB).
   */
  getState(into?: EngineState): Promise<EngineState>;
  /**
   * Optional: the state as of the work queued so far, without making the caller wait for that
   * work (train() snapshots every epoch this way, then writes the checkpoint while the next epoch
   * trains). The copy starts at the call, so later steps may be issued at once; the promise
   * resolves once it has landed. The arrays may be engine-owned: valid until the next call.
   */
  snapshotState?(): Promise<EngineState>;
  setState(state: EngineState): Promise<void>;
  dispose(): Promise<void>;
}

export type EngineFactory = (model: EngineModel, options: EngineOptions) => Promise<Engine>;
