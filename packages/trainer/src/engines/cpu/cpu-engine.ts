/**
 * The cpu engine: R-AMT steps in Float32Array on the CPU, the numerical reference the CUDA engine
 * is checked against (engine.ts states the step; vit.ts, block.ts and the op files compute it).
 *
 * Memory: one Arena holds the frozen weights (float32), the student's masked weights W', the
 * activations of a kept forward at maxBatch, the gradient buffers of two signals and the
 * weight gradients of the masked tensors. Scores and Adam moments live beside them.
 */
import { availableParallelism } from "node:os";
import { UnmaskError } from "@unmask/clip";
import type {
  Engine,
  EngineFactory,
  EngineModel,
  EngineOptions,
  EngineState,
  ImageCache,
  StepDebug,
  StepOptions,
  StepResult,
  TrainBatch,
} from "../../engine.js";
import { philoxUniforms } from "../../random/philox.js";
import { logitLosses } from "../../rmt/losses.js";
import { l2Norm, regularizerGradientScale } from "../../rmt/regularizer.js";
import { Arena } from "./arena.js";
import { augmentCrops } from "./augment.js";
import { loadCpuModel, type MaskedTensor } from "./cpu-model.js";
import { applyMask, maskedUpdate } from "./update.js";
import {
  allocVitBuffers,
  type VitBuffers,
  type VitDims,
  type VitGradients,
  type VitWeights,
  vitBackward,
  vitForward,
} from "./vit.js";

class CpuEngine implements Engine {
  readonly name = "cpu" as const;
  private readonly arena: Arena;
  private readonly dims: VitDims;
  private readonly teacher: VitWeights;
  private readonly student: VitWeights;
  private readonly masked: MaskedTensor[];
  private readonly grads: VitGradients;
  private readonly buffers: VitBuffers;
  private readonly images: Float32Array;
  private readonly studentLogits: Float32Array;
  private readonly teacherLogits: Float32Array;
  private readonly dlogits: Float32Array;
  private readonly uniformScratch: Float32Array<ArrayBuffer>;
  private readonly updateScratch: Float32Array;
  private cache: ImageCache | undefined;
  private disposed = false;

  constructor(
    model: EngineModel,
    private readonly options: CpuEngineOptions,
  ) {
    if (!Number.isSafeInteger(options.maxBatch) || options.maxBatch < 1)
      throw new UnmaskError(
        "BAD_OPTION",
        `cpu engine: maxBatch must be a positive integer, got ${options.maxBatch}`,
        {
          subject: "maxBatch",
        },
      );
    // Size the arena up front so the kept activations do not grow it piece by piece.
    this.arena = new Arena(64 << 20, options.threads ?? availableParallelism());
    const { dims, teacher, student, grads, masked } = loadCpuModel(this.arena, model, options.hyper);
    this.dims = dims;
    this.teacher = teacher;
    this.student = student;
    this.grads = grads;
    this.masked = masked;
    const arena = this.arena;

    const B = options.maxBatch;
    this.buffers = allocVitBuffers(arena, dims, B);
    this.images = arena.floats(B * 3 * dims.resolution ** 2, "augmented images");
    this.studentLogits = new Float32Array(B * dims.classes);
    this.teacherLogits = new Float32Array(B * dims.classes);
    this.dlogits = new Float32Array(2 * B * dims.classes);
    this.uniformScratch = new Float32Array(Math.max(0, ...this.masked.map((t) => t.count)));
    this.updateScratch = new Float32Array(2 * this.uniformScratch.length);
  }

  private live(): void {
    if (this.disposed) throw new UnmaskError("ENGINE_DISPOSED", "cpu engine: used after dispose()");
  }

  async setImageCache(cache: ImageCache): Promise<void> {
    this.live();
    const expected = cache.count * cache.height * cache.width * 3;
    if (cache.pixels.length !== expected)
      throw new UnmaskError(
        "BAD_SHAPE",
        `cpu engine: cache.pixels holds ${cache.pixels.length} bytes, expected ${cache.count} x ${cache.height} x ${cache.width} x 3 = ${expected}`,
        { subject: "cache.pixels" },
      );
    this.cache = cache;
  }

  /** The batch's normalised images [B, 3, R, R]. */
  private batchImages(batch: TrainBatch, count: number): Float32Array {
    const R = this.dims.resolution;
    if ((batch.pixels === undefined) === (batch.crops === undefined))
      throw new UnmaskError("BAD_BATCH", "cpu engine: a batch has exactly one of pixels and crops", {
        subject: "batch",
      });
    if (batch.pixels) {
      if (batch.pixels.length !== count * 3 * R * R)
        throw new UnmaskError(
          "BAD_SHAPE",
          `cpu engine: batch.pixels has ${batch.pixels.length} values, expected ${count} x 3 x ${R} x ${R}`,
          { subject: "batch.pixels" },
        );
      return batch.pixels;
    }
    const crops = batch.crops!;
    const cache = this.cache;
    if (!cache)
      throw new UnmaskError("NO_IMAGE_CACHE", "cpu engine: a crops batch needs setImageCache() first", {
        subject: "batch.crops",
      });
    if (crops.indices.length !== count || crops.boxes.length !== 4 * count || crops.flips.length !== count)
      throw new UnmaskError("BAD_SHAPE", `cpu engine: batch.crops must describe ${count} images`, {
        subject: "batch.crops",
      });
    for (const i of crops.indices)
      if (!(i >= 0 && i < cache.count))
        throw new UnmaskError(
          "BAD_BATCH",
          `cpu engine: crop index ${i} is outside the cache of ${cache.count} images`,
          {
            subject: "batch.crops.indices",
          },
        );
    augmentCrops(this.images, cache, crops, count, R);
    return this.images.subarray(0, count * 3 * R * R);
  }

  async step(batch: TrainBatch, options: StepOptions): Promise<StepResult> {
    this.live();
    const { dims, options: engineOptions } = this;
    const { hyper } = engineOptions;
    const B = batch.labels.length;
    const C = dims.classes;
    if (B < 1 || B > engineOptions.maxBatch)
      throw new UnmaskError(
        "BAD_BATCH",
        `cpu engine: batch of ${B} images, expected 1..${engineOptions.maxBatch}`,
        {
          subject: "batch.labels",
        },
      );
    for (const y of batch.labels)
      if (!(y >= 0 && y < C))
        throw new UnmaskError("BAD_BATCH", `cpu engine: label ${y} is outside 0..${C - 1}`, {
          subject: "batch.labels",
        });
    const images = this.batchImages(batch, B);

    // Teacher first: its pass reuses buffers that the student's backward reads afterwards.
    const zt = this.teacherLogits.subarray(0, B * C);
    const zs = this.studentLogits.subarray(0, B * C);
    vitForward(zt, images, this.teacher, this.buffers, dims, B, false);
    vitForward(zs, images, this.student, this.buffers, dims, B, true);
    const dz = this.dlogits.subarray(0, 2 * B * C);
    const losses = logitLosses(
      {
        studentLogits: zs,
        teacherLogits: zt,
        labels: batch.labels,
        batch: B,
        classes: C,
        temperature: hyper.klTemperature,
        fuseAlpha: hyper.fuseAlpha,
      },
      dz.subarray(0, B * C),
      dz.subarray(B * C),
    );
    vitBackward(this.grads, dz, this.student, this.buffers, dims, B);

    const debug: StepDebug | undefined = options.debug
      ? { studentLogits: Float32Array.from(zs), teacherLogits: Float32Array.from(zt), grads: new Map() }
      : undefined;
    let normSum = 0;
    for (const t of this.masked) {
      const norm = l2Norm(t.scores);
      normSum += norm;
      let u: Float32Array | undefined = options.uniforms?.get(t.name);
      if (u && u.length !== t.count)
        throw new UnmaskError(
          "BAD_OPTION",
          `cpu engine: uniforms for ${t.name} has ${u.length} values, expected ${t.count}`,
          {
            subject: t.name,
          },
        );
      u ??= philoxUniforms(engineOptions.seed, options.step, t.index, t.count, this.uniformScratch);
      const d = debug
        ? { ce: new Float32Array(t.count), kl: new Float32Array(t.count), gdr: new Float32Array(t.count) }
        : undefined;
      maskedUpdate(
        t.scores,
        t.adamM,
        t.adamV,
        t.masked,
        t.weight,
        t.grad,
        u,
        t.count,
        regularizerGradientScale(norm, hyper.regWeight),
        options.lr,
        options.step,
        hyper,
        this.updateScratch,
        d,
      );
      if (debug && d) debug.grads.set(t.name, d);
    }
    return {
      lossCe: losses.lossCe,
      lossKl: losses.lossKl,
      lossReg: hyper.regWeight * normSum,
      correct: losses.correct,
      ...(debug ? { debug } : {}),
    };
  }

  async forward(
    pixels: Float32Array,
    count: number,
    options: { teacher?: boolean; output?: "logits" | "features" } = {},
  ): Promise<Float32Array> {
    this.live();
    const { dims } = this;
    const R = dims.resolution;
    const imageSize = 3 * R * R;
    if (!Number.isSafeInteger(count) || count < 0 || pixels.length !== count * imageSize)
      throw new UnmaskError(
        "BAD_SHAPE",
        `cpu engine: forward got ${pixels.length} pixels values for ${count} images of 3 x ${R} x ${R}`,
        {
          subject: "pixels",
        },
      );
    const features = options.output === "features";
    const perImage = features ? dims.embed : dims.classes;
    const out = new Float32Array(count * perImage);
    const weights = options.teacher ? this.teacher : this.student;
    const maxBatch = this.options.maxBatch;
    for (let start = 0; start < count; start += maxBatch) {
      const n = Math.min(maxBatch, count - start);
      const logits = this.studentLogits.subarray(0, n * dims.classes);
      vitForward(
        logits,
        pixels.subarray(start * imageSize, (start + n) * imageSize),
        weights,
        this.buffers,
        dims,
        n,
        false,
      );
      const result: ArrayLike<number> = features
        ? this.buffers.head.features.subarray(0, n * dims.embed)
        : logits;
      out.set(result, start * perImage);
    }
    return out;
  }

  async getState(into?: EngineState): Promise<EngineState> {
    this.live();
    const copy = (pick: (t: MaskedTensor) => Float32Array, reuse?: Map<string, Float32Array>) =>
      new Map(this.masked.map((t) => [t.name, copyInto(pick(t), reuse?.get(t.name))]));
    return {
      scores: copy((t) => t.scores, into?.scores),
      adamM: copy((t) => t.adamM, into?.adamM),
      adamV: copy((t) => t.adamV, into?.adamV),
    };
  }

  async setState(state: EngineState): Promise<void> {
    this.live();
    for (const t of this.masked)
      for (const [what, map] of [
        ["scores", state.scores],
        ["adamM", state.adamM],
        ["adamV", state.adamV],
      ] as const) {
        const values = map.get(t.name);
        if (!values || values.length !== t.count)
          throw new UnmaskError(
            "BAD_STATE",
            `cpu engine: state.${what} for ${t.name} has ${values ? values.length : "no"} values, expected ${t.count}`,
            { subject: t.name },
          );
      }
    for (const t of this.masked) {
      t.scores.set(state.scores.get(t.name)!);
      t.adamM.set(state.adamM.get(t.name)!);
      t.adamV.set(state.adamV.get(t.name)!);
      applyMask(t.masked, t.weight, t.scores, t.count, this.options.hyper.threshold);
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.arena.close();
  }
}

export interface CpuEngineOptions extends EngineOptions {
  /**
   * Threads for the large GEMMs (worker_threads on the engine's shared memory); default: the
   * machine's available parallelism. Results do not depend on it (bit-identical).
   */
  threads?: number;
}

/** The cpu engine (engine.ts EngineFactory, plus the cpu-only `threads` option). */
export const createCpuEngine: (model: EngineModel, options: CpuEngineOptions) => Promise<Engine> = async (
  model,
  options,
) => new CpuEngine(model, options);
const _factory: EngineFactory = createCpuEngine;
void _factory;

/** `source` copied into `target` when it has the same length, else into a new array. */
function copyInto(source: Float32Array, target: Float32Array | undefined): Float32Array {
  if (target?.length !== source.length) return Float32Array.from(source);
  target.set(source);
  return target;
}
