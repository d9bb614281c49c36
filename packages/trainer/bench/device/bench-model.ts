/**
 * The ViT-B/16 step the device benches time (main.ts, data-parallel.ts): random weights in
 * CLIP's shapes (`classes` text features), a uint8 image cache of 256 pictures, and each step's
 * crops and labels, the same on every run.
 */
import type { ClipConfig } from "@unmask/clip";
import { VIT_B16_CONFIG } from "../../../convert/src/testing/clip-shapes.js";
import { DEFAULT_HYPER, type EngineModel, type EngineOptions, type FloatTensor } from "../../src/engine.js";
import { createCudaEngine } from "../../src/engines/cuda/engine.js";
import type { GemmTuning } from "../../src/engines/cuda/gemm-tuning.js";
import type { Epilogues } from "../../src/engines/cuda/model.js";
import { benchPrecision } from "./with-env.js";

/** Deterministic normal draws (Box-Muller over a xorshift), for random weights. */
export function gaussian(seed: number): () => number {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
}

export function vitB16(classes: number): EngineModel {
  const config: ClipConfig = VIT_B16_CONFIG;
  const g = gaussian(42);
  const D = 768;
  const weights = new Map<string, FloatTensor>();
  const put = (name: string, shape: number[], std: number, mean = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = mean + std * g();
    weights.set(name, { shape, data });
  };
  put("visual.conv1.weight", [D, 3, 16, 16], 1 / Math.sqrt(768) / Math.sqrt(3));
  put("visual.class_embedding", [D], D ** -0.5);
  put("visual.positional_embedding", [197, D], D ** -0.5);
  put("visual.ln_pre.weight", [D], 0, 1);
  put("visual.ln_pre.bias", [D], 0);
  put("visual.ln_post.weight", [D], 0, 1);
  put("visual.ln_post.bias", [D], 0);
  put("visual.proj", [D, 512], D ** -0.5);
  for (let l = 0; l < 12; l++) {
    const b = `visual.transformer.resblocks.${l}.`;
    put(`${b}attn.in_proj_weight`, [3 * D, D], D ** -0.5);
    put(`${b}attn.in_proj_bias`, [3 * D], 0.02);
    put(`${b}attn.out_proj.weight`, [D, D], D ** -0.5);
    put(`${b}attn.out_proj.bias`, [D], 0.02);
    put(`${b}ln_1.weight`, [D], 0.1, 1);
    put(`${b}ln_1.bias`, [D], 0.05);
    put(`${b}ln_2.weight`, [D], 0.1, 1);
    put(`${b}ln_2.bias`, [D], 0.05);
    put(`${b}mlp.c_fc.weight`, [4 * D, D], (2 * D) ** -0.5);
    put(`${b}mlp.c_fc.bias`, [4 * D], 0.02);
    put(`${b}mlp.c_proj.weight`, [D, 4 * D], D ** -0.5);
    put(`${b}mlp.c_proj.bias`, [D], 0.02);
  }
  const text = new Float32Array(classes * 512);
  for (let c = 0; c < classes; c++) {
    let n = 0;
    for (let e = 0; e < 512; e++) {
      text[c * 512 + e] = g();
      n += text[c * 512 + e] ** 2;
    }
    for (let e = 0; e < 512; e++) text[c * 512 + e] /= Math.sqrt(n);
  }
  const maskedTensors = ["visual.conv1.weight"];
  for (let l = 0; l < 12; l++)
    maskedTensors.push(
      `visual.transformer.resblocks.${l}.attn.in_proj_weight`,
      `visual.transformer.resblocks.${l}.attn.out_proj.weight`,
    );
  return {
    config,
    weights,
    maskedTensors,
    textFeatures: { shape: [classes, 512], data: text },
    logitScale: 100,
  };
}

/** 256 uint8 images of 256 x 256 (a fixed pattern) for the engine's crop cache. */
export function benchCache() {
  const count = 256;
  const side = 256;
  const pixels = new Uint8Array(count * side * side * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
  return { count, height: side, width: side, pixels };
}

export type BenchEngine = Awaited<ReturnType<typeof createCudaEngine>> & {
  timeGraph(B: number, n: number): number;
  memoryInUse(): { arenaBytes: number; deviceUsed: number };
  profileStep(B: number): { name: string; calls: number; ms: number; flops: number }[];
  memoryBreakdown(): { name: string; bytes: number; count: number }[];
  gemmTuning(): GemmTuning[];
  gemmEpilogues(): Epilogues;
};

export async function benchEngine(
  model: EngineModel,
  B: number,
  cache: ReturnType<typeof benchCache>,
  distributed?: EngineOptions["distributed"],
): Promise<BenchEngine> {
  const engine = (await createCudaEngine(model, {
    maxBatch: B,
    hyper: DEFAULT_HYPER,
    seed: 1,
    distributed,
    ...benchPrecision(),
  })) as BenchEngine;
  await engine.setImageCache(cache);
  return engine;
}

/** Step s's crops (fixed boxes, alternating flips) and labels, the same on every run. */
export function benchBatches(B: number) {
  const labels = new Int32Array(B);
  const makeCrops = (step: number) => {
    const indices = new Int32Array(B);
    const boxes = new Float32Array(B * 4);
    const flips = new Uint8Array(B);
    for (let b = 0; b < B; b++) {
      indices[b] = (b * 7 + step * 13) % 256;
      labels[b] = (b + step) % 100;
      boxes.set([0.1, 0.05, 0.8, 0.85], b * 4);
      flips[b] = (b + step) & 1;
    }
    return { indices, boxes, flips };
  };
  return { labels, makeCrops };
}
