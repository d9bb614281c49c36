/**
 * randomVitModel: a CLIP image tower with seeded random weights (OpenAI's init scales, the
 * make_fixtures.py recipe) and random L2-normalised class text features, for engine tests and
 * benchmarks where only the shapes matter (CUDA against cpu, gradient checks, speed).
 */
import { type ClipConfig, defaultMaskedTensors, vitConfig } from "@unmask/clip";
import type { EngineModel, FloatTensor } from "../../engine.js";

export interface RandomVitOptions {
  resolution: number;
  patch: number;
  width: number;
  layers: number;
  /** Default width / 64 (at least 1). */
  heads?: number;
  embed: number;
  classes: number;
  seed?: number;
  /** Default: the published set (patch embedding + attention in/out of every block). */
  maskedTensors?: string[];
}

/** Normal(0, 1) draws from a seeded LCG + Box-Muller (deterministic across platforms). */
export function normals(seed: number): () => number {
  let s = seed >>> 0 || 1;
  const uniform = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

export function randomVitModel(options: RandomVitOptions): EngineModel {
  const { resolution: R, patch: p, width: D, layers, embed: E, classes: C } = options;
  const heads = options.heads ?? Math.max(1, Math.floor(D / 64));
  const config: ClipConfig = vitConfig({
    embedDim: E,
    imageResolution: R,
    visionLayers: layers,
    visionWidth: D,
    visionPatchSize: p,
    visionHeads: heads,
    contextLength: 77,
    vocabSize: 49408,
    transformerWidth: 64,
    transformerLayers: 1,
  });
  const normal = normals(options.seed ?? 1);
  const weights = new Map<string, FloatTensor>();
  const put = (name: string, shape: number[], std: number, mean = 0) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = mean + std * normal();
    weights.set(name, { shape, data });
  };
  const N = (R / p) ** 2 + 1;
  put("visual.conv1.weight", [D, 3, p, p], (3 * p * p) ** -0.5);
  put("visual.class_embedding", [D], D ** -0.5);
  put("visual.positional_embedding", [N, D], D ** -0.5);
  put("visual.ln_pre.weight", [D], 0.1, 1);
  put("visual.ln_pre.bias", [D], 0.05);
  for (let l = 0; l < layers; l++) {
    const b = `visual.transformer.resblocks.${l}.`;
    put(`${b}attn.in_proj_weight`, [3 * D, D], D ** -0.5);
    put(`${b}attn.in_proj_bias`, [3 * D], 0.02);
    put(`${b}attn.out_proj.weight`, [D, D], D ** -0.5);
    put(`${b}attn.out_proj.bias`, [D], 0.02);
    put(`${b}ln_1.weight`, [D], 0.1, 1);
    put(`${b}ln_1.bias`, [D], 0.05);
    put(`${b}mlp.c_fc.weight`, [4 * D, D], (2 * D) ** -0.5);
    put(`${b}mlp.c_fc.bias`, [4 * D], 0.02);
    put(`${b}mlp.c_proj.weight`, [D, 4 * D], D ** -0.5);
    put(`${b}mlp.c_proj.bias`, [D], 0.02);
    put(`${b}ln_2.weight`, [D], 0.1, 1);
    put(`${b}ln_2.bias`, [D], 0.05);
  }
  put("visual.ln_post.weight", [D], 0.1, 1);
  put("visual.ln_post.bias", [D], 0.05);
  put("visual.proj", [D, E], D ** -0.5);
  const text = new Float32Array(C * E);
  for (let c = 0; c < C; c++) {
    let norm = 0;
    for (let e = 0; e < E; e++) {
      text[c * E + e] = normal();
      norm += text[c * E + e] ** 2;
    }
    for (let e = 0; e < E; e++) text[c * E + e] /= Math.sqrt(norm);
  }
  return {
    config,
    weights,
    maskedTensors: options.maskedTensors ?? defaultMaskedTensors(config),
    textFeatures: { shape: [C, E], data: text },
    logitScale: 100,
  };
}

/** Normalised-looking random images [count, 3, R, R] (standard normal values). */
export function randomImages(count: number, resolution: number, seed = 2): Float32Array {
  const normal = normals(seed);
  const out = new Float32Array(count * 3 * resolution * resolution);
  for (let i = 0; i < out.length; i++) out[i] = normal();
  return out;
}
