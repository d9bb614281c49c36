/**
 * Top-1 accuracy of the masked model and of zero-shot CLIP (the engine's teacher) on a labelled
 * test set, with OpenAI's test transform (bicubic short-side resize, center crop, CLIP mean/std).
 * Both models see each decoded batch, so a test set is decoded once for the before/after figures.
 */
import { performance } from "node:perf_hooks";
import { UnmaskError } from "@unmask/clip";
import type { Dataset } from "./data/dataset.js";
import type { ImageIo } from "./data/image-io.js";
import type { Engine } from "./engine.js";
import { DEFAULT_EVAL_BATCH } from "./options.js";

export type EvaluatedModel = "masked" | "zero-shot";

export interface EvaluateOptions {
  engine: Engine;
  /** Labels must index the engine's text features (data/resolve.ts alignClasses). */
  dataset: Dataset;
  /** Model input resolution R. */
  resolution: number;
  io: ImageIo;
  /** Default: both. */
  models?: readonly EvaluatedModel[];
  batchSize?: number;
  /**
   * Evaluate `limit` images only, spread evenly over the set (image floor(i * n / limit)), so a
   * class-sorted folder still gives every class (quick looks; the report says how many).
   */
  limit?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface Accuracy {
  correct: number;
  /** correct / images, in [0, 1]. */
  accuracy: number;
}

export interface EvaluateResult {
  images: number;
  masked?: Accuracy;
  zeroShot?: Accuracy;
  /** Per image, the predicted label of each model evaluated. */
  predictions: { masked?: Int32Array; zeroShot?: Int32Array };
  seconds: number;
}

/** Row-wise argmax of [count, classes] logits; the first maximum wins a tie. */
export function argmaxRows(
  logits: Float32Array,
  count: number,
  classes: number,
  out: Int32Array,
  offset = 0,
): void {
  for (let i = 0; i < count; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
    out[offset + i] = best;
  }
}

export async function evaluate(options: EvaluateOptions): Promise<EvaluateResult> {
  const { engine, dataset, resolution, io } = options;
  const started = performance.now();
  const models = options.models ?? ["zero-shot", "masked"];
  const batchSize = options.batchSize ?? DEFAULT_EVAL_BATCH;
  const n = dataset.items.length;
  const limit = Math.min(options.limit ?? n, n);
  const items =
    limit === n
      ? dataset.items
      : Array.from({ length: limit }, (_, i) => dataset.items[Math.floor((i * n) / limit)]);
  const classes = dataset.classNames.length;
  if (items.length === 0)
    throw new UnmaskError("DATA_NOT_FOUND", `${dataset.description}: no test images`, { subject: "test" });
  const plane = 3 * resolution * resolution;
  const predictions: EvaluateResult["predictions"] = {};
  for (const m of models) predictions[m === "masked" ? "masked" : "zeroShot"] = new Int32Array(items.length);

  const decode = async (start: number): Promise<Float32Array> => {
    const end = Math.min(items.length, start + batchSize);
    const pixels = new Float32Array((end - start) * plane);
    const images = await Promise.all(
      items.slice(start, end).map((it) => io.preprocess(it.source, resolution)),
    );
    images.forEach((img, i) => {
      pixels.set(img, i * plane);
    });
    return pixels;
  };

  let next = decode(0);
  for (let start = 0; start < items.length; start += batchSize) {
    options.signal?.throwIfAborted();
    const pixels = await next;
    const count = pixels.length / plane;
    if (start + batchSize < items.length) next = decode(start + batchSize);
    for (const model of models) {
      const logits = await engine.forward(pixels, count, { teacher: model === "zero-shot" });
      const target = model === "masked" ? predictions.masked : predictions.zeroShot;
      argmaxRows(logits, count, classes, target as Int32Array, start);
    }
    options.onProgress?.(start + count, items.length);
  }

  const score = (predicted: Int32Array | undefined): Accuracy | undefined => {
    if (!predicted) return undefined;
    let correct = 0;
    for (let i = 0; i < items.length; i++) if (predicted[i] === items[i].label) correct++;
    return { correct, accuracy: correct / items.length };
  };
  const result: EvaluateResult = {
    images: items.length,
    predictions,
    seconds: (performance.now() - started) / 1000,
  };
  const masked = score(predictions.masked);
  const zeroShot = score(predictions.zeroShot);
  if (masked) result.masked = masked;
  if (zeroShot) result.zeroShot = zeroShot;
  return result;
}
