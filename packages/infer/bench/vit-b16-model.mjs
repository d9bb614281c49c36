// A random-weight model directory with exactly ViT-B/16's shapes (fp16, as OpenAI ships it),
// written with clip's safetensors writer and convert's ONNX export (vision tower only), plus
// masks over the published R-AMT tensor set. Bench-only: @unmask/convert is a devDependency.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  configToJson,
  defaultMaskedTensors,
  f32ToF16,
  vitConfig,
  vitTensorNames,
  writeFileAtomic,
  writeSafetensors,
} from "@unmask/clip";
import { writeOnnxModels } from "@unmask/convert";
import { encodeMask, fingerprintTensors } from "@unmask/mask-format";

export const config = vitConfig({
  embedDim: 512,
  imageResolution: 224,
  visionLayers: 12,
  visionWidth: 768,
  visionPatchSize: 16,
  contextLength: 77,
  vocabSize: 49408,
  transformerWidth: 512,
  transformerLayers: 12,
});

function shapeOf(name) {
  const W = name.startsWith("visual.") ? 768 : 512;
  const fixed = {
    positional_embedding: [77, 512],
    text_projection: [512, 512],
    logit_scale: [],
    "visual.class_embedding": [768],
    "visual.positional_embedding": [197, 768],
    "visual.proj": [768, 512],
    "visual.conv1.weight": [768, 3, 16, 16],
    "token_embedding.weight": [49408, 512],
  };
  if (name in fixed) return fixed[name];
  if (/ln_|ln_final/.test(name)) return [W];
  const table = {
    "attn.in_proj_weight": [3 * W, W],
    "attn.in_proj_bias": [3 * W],
    "attn.out_proj.weight": [W, W],
    "attn.out_proj.bias": [W],
    "mlp.c_fc.weight": [4 * W, W],
    "mlp.c_fc.bias": [4 * W],
    "mlp.c_proj.weight": [W, 4 * W],
    "mlp.c_proj.bias": [W],
  };
  const suffix = Object.keys(table).find((k) => name.endsWith(`.${k}`));
  return table[suffix];
}

let seed = 12345;
const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296;

function values(name, numel) {
  const out = new Float32Array(numel);
  if (name === "logit_scale") out[0] = Math.log(100);
  else if (/ln_.*weight|ln_final.weight/.test(name)) out.fill(1);
  else if (/bias/.test(name)) out.fill(0);
  else for (let i = 0; i < numel; i++) out[i] = (random() - 0.5) * 0.04;
  return out;
}

export async function makeVitB16Dir(dir) {
  mkdirSync(dir, { recursive: true });
  const tensors = vitTensorNames(config).map((name) => {
    const shape = shapeOf(name);
    const numel = shape.reduce((a, b) => a * b, 1);
    return {
      name,
      dtype: "F16",
      shape,
      data: () => {
        const f = values(name, numel);
        const h = new Uint16Array(numel);
        for (let i = 0; i < numel; i++) h[i] = f32ToF16(f[i]);
        return new Uint8Array(h.buffer);
      },
    };
  });
  await writeSafetensors(join(dir, "model.safetensors"), tensors);
  await writeFileAtomic(
    join(dir, "config.json"),
    JSON.stringify(
      configToJson(config, { modelName: "random-ViT-B/16", dtype: "F16", sourceSha256: null }),
      null,
      2,
    ),
  );
  await writeOnnxModels({ modelDir: dir, config, towers: ["vision"] });
}

/** A mask over the default R-AMT set (patch embedding + attention in/out of every block), ~3% zeros. */
export async function makeMaskBytes(file, maskSeed) {
  const names = defaultMaskedTensors(config);
  let s = maskSeed >>> 0;
  const rnd = () => (s = (s * 1664525 + 1013904223) >>> 0) / 4294967296;
  const tensors = [];
  const fp = [];
  for (const name of names) {
    const entry = file.entry(name);
    const numel = entry.shape.reduce((a, b) => a * b, 1);
    const bits = new Uint8Array(Math.ceil(numel / 8)).fill(0xff);
    for (let k = 0; k < numel; k++) if (rnd() < 0.03) bits[k >> 3] &= ~(0x80 >> (k & 7));
    tensors.push({ name, shape: entry.shape, bits });
    fp.push({ name, shape: entry.shape, values: await file.readFloat32(name) });
  }
  const classNames = Array.from({ length: 10 }, (_, i) => `class${i}`);
  const textFeatures = new Float32Array(10 * 512).map(() => random() - 0.5);
  return encodeMask({
    baseModel: { name: "random-ViT-B/16", fingerprint: await fingerprintTensors(fp) },
    tensors,
    head: { classNames, template: "a photo of a {}.", textFeatures },
  });
}
