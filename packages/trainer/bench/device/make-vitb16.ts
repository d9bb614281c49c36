/**
 * Writes a random-weight ViT-B/16 CLIP model directory (config.json + fp16 model.safetensors with
 * canonical OpenAI names, as `unmask convert` writes an OpenAI release), for the end-to-end run
 * on the device machine, where it is generated rather than carried (300 MB):
 *   node make-vitb16.mjs <outDir>
 * Weights: normal draws with OpenAI's init scales (deterministic xorshift + Box-Muller).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type ClipConfig,
  configToJson,
  encodeSafetensors,
  f32ToF16,
  vitConfig,
  vitTensorNames,
} from "@unmask/clip";

export const VIT_B16: ClipConfig = vitConfig({
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

function shapeOf(name: string, c: ClipConfig): { shape: number[]; std: number; mean?: number } {
  const V = c.visionWidth;
  const T = c.transformerWidth;
  const text = name.startsWith("transformer.");
  const W = text ? T : V;
  const tail = name.replace(/^.*resblocks\.\d+\./, "");
  const table: Record<string, { shape: number[]; std: number; mean?: number }> = {
    "attn.in_proj_weight": { shape: [3 * W, W], std: W ** -0.5 },
    "attn.in_proj_bias": { shape: [3 * W], std: 0.02 },
    "attn.out_proj.weight": { shape: [W, W], std: W ** -0.5 },
    "attn.out_proj.bias": { shape: [W], std: 0.02 },
    "ln_1.weight": { shape: [W], std: 0.1, mean: 1 },
    "ln_1.bias": { shape: [W], std: 0.05 },
    "ln_2.weight": { shape: [W], std: 0.1, mean: 1 },
    "ln_2.bias": { shape: [W], std: 0.05 },
    "mlp.c_fc.weight": { shape: [4 * W, W], std: (2 * W) ** -0.5 },
    "mlp.c_fc.bias": { shape: [4 * W], std: 0.02 },
    "mlp.c_proj.weight": { shape: [W, 4 * W], std: W ** -0.5 },
    "mlp.c_proj.bias": { shape: [W], std: 0.02 },
  };
  if (name.includes("resblocks.")) return table[tail];
  const p = c.visionPatchSize as number;
  const grid = c.imageResolution / p;
  const top: Record<string, { shape: number[]; std: number; mean?: number }> = {
    positional_embedding: { shape: [c.contextLength, T], std: 0.01 },
    text_projection: { shape: [T, c.embedDim], std: T ** -0.5 },
    logit_scale: { shape: [], std: 0, mean: Math.log(100) },
    "visual.class_embedding": { shape: [V], std: V ** -0.5 },
    "visual.positional_embedding": { shape: [grid * grid + 1, V], std: V ** -0.5 },
    "visual.proj": { shape: [V, c.embedDim], std: V ** -0.5 },
    "visual.conv1.weight": { shape: [V, 3, p, p], std: (3 * p * p) ** -0.5 },
    "visual.ln_pre.weight": { shape: [V], std: 0, mean: 1 },
    "visual.ln_pre.bias": { shape: [V], std: 0 },
    "visual.ln_post.weight": { shape: [V], std: 0, mean: 1 },
    "visual.ln_post.bias": { shape: [V], std: 0 },
    "token_embedding.weight": { shape: [c.vocabSize, T], std: 0.02 },
    "ln_final.weight": { shape: [T], std: 0, mean: 1 },
    "ln_final.bias": { shape: [T], std: 0 },
  };
  return top[name];
}

export function writeVitB16(outDir: string, seed = 42): void {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x + 0.5) / 4294967296;
  };
  const tensors = vitTensorNames(VIT_B16).map((name) => {
    const { shape, std, mean = 0 } = shapeOf(name, VIT_B16);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Uint16Array(n);
    for (let i = 0; i < n; i++)
      data[i] = f32ToF16(mean + std * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next()));
    return { name, dtype: "F16" as const, shape, data: new Uint8Array(data.buffer) };
  });
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "model.safetensors"), encodeSafetensors(tensors));
  writeFileSync(
    join(outDir, "config.json"),
    `${JSON.stringify(configToJson(VIT_B16, { modelName: "random-ViT-B/16", dtype: "F16", sourceSha256: null }), null, 2)}\n`,
  );
}
