/**
 * Loads the tiny-vit-p8 fixture (the HF safetensors of the model and the float64 RMT step) into
 * an EngineModel plus the step's inputs and expected outputs. Used by the GPU parity test and
 * the device bundle (which carries the two files).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseSafetensors, planFromHf, toFloat32, vitConfig } from "@unmask/clip";
import { DEFAULT_HYPER, type EngineModel, type FloatTensor } from "../../src/engine.js";

function readAll(path: string): Map<string, FloatTensor> {
  const file = parseSafetensors(new Uint8Array(readFileSync(path)), path);
  const out = new Map<string, FloatTensor>();
  for (const [name, e] of file.tensors) {
    const bytes = file.bytes.subarray(e.fileOffset, e.fileOffset + e.byteLength);
    const data =
      (e.dtype as string) === "I32"
        ? Float32Array.from(new Int32Array(bytes.slice().buffer))
        : toFloat32(bytes, e.dtype, name);
    out.set(name, { shape: e.shape, data });
  }
  return out;
}

export interface TinyFixture {
  model: EngineModel;
  step: Map<string, FloatTensor>;
  hyper: typeof DEFAULT_HYPER;
}

/** `dir` holds hf/model.safetensors and rmt_step.safetensors of tiny-vit-p8. */
export function loadTinyFixture(dir: string): TinyFixture {
  const hf = readAll(join(dir, "hf", "model.safetensors"));
  const weights = new Map<string, FloatTensor>();
  // canonical names already (the device bundle's vision-only copy), or the HF layout to map
  const canonical = hf.has("visual.conv1.weight");
  if (canonical) for (const [k, t] of hf) if (k.startsWith("visual.")) weights.set(k, t);
  const plan: ReturnType<typeof planFromHf> = canonical ? new Map() : planFromHf(hf.keys());
  for (const [key, p] of plan) {
    if (!key.startsWith("visual.")) continue;
    if (p.op === "copy") weights.set(key, hf.get(p.from) as FloatTensor);
    else if (p.op === "concat-rows") {
      const parts = p.from.map((f) => hf.get(f) as FloatTensor);
      const data = new Float32Array(parts.reduce((s, t) => s + t.data.length, 0));
      let o = 0;
      for (const t of parts) {
        data.set(t.data, o);
        o += t.data.length;
      }
      weights.set(key, {
        shape: [parts.reduce((s, t) => s + t.shape[0], 0), ...parts[0].shape.slice(1)],
        data,
      });
    } else {
      const t = hf.get(p.from) as FloatTensor;
      const [r, c] = t.shape;
      const data = new Float32Array(r * c);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) data[j * r + i] = t.data[i * c + j];
      weights.set(key, { shape: [c, r], data });
    }
  }
  const step = readAll(join(dir, "rmt_step.safetensors"));
  const logitScale = Math.exp((hf.get("logit_scale") as FloatTensor).data[0]);
  void canonical;
  const masked = [0, 1].flatMap((i) => [
    `visual.transformer.resblocks.${i}.attn.in_proj_weight`,
    `visual.transformer.resblocks.${i}.attn.out_proj.weight`,
  ]);
  const model: EngineModel = {
    config: vitConfig({
      embedDim: 64,
      imageResolution: 32,
      visionLayers: 2,
      visionWidth: 128,
      visionPatchSize: 8,
      contextLength: 77,
      vocabSize: 49408,
      transformerWidth: 64,
      transformerLayers: 2,
    }),
    weights,
    maskedTensors: masked,
    textFeatures: step.get("text_features") as FloatTensor,
    logitScale,
  };
  return { model, step, hyper: { ...DEFAULT_HYPER } };
}

/** max |a - b| / max |b|: the error relative to the tensor's scale. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / (den || 1);
}

/** ||a - b|| / ||b||: the error over the whole tensor. */
export function normError(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / (den || 1));
}

/** Fraction of elements where |a - b| <= tol. */
export function agreement(a: Float32Array, b: Float32Array, tol: number): number {
  let same = 0;
  for (let i = 0; i < b.length; i++) if (Math.abs(a[i] - b[i]) <= tol) same++;
  return same / b.length;
}
