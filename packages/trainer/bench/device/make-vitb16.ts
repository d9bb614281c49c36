/**
 * Writes a random-weight ViT-B/16 CLIP model directory (config.json + fp16 model.safetensors with
 * canonical OpenAI names, as `unmask convert` writes an OpenAI release), for the end-to-end run
 * on the device machine, where it is generated rather than carried (300 MB):
 *   node make-vitb16.mjs <outDir>
 * Weights: normal draws with OpenAI's init scales (deterministic xorshift + Box-Muller).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { configToJson, encodeSafetensors, f32ToF16 } from "@unmask/clip";
// the config and shapes the convert package's benches use (a source import: no ONNX writer in
// the device bundle)
import { VIT_B16_CONFIG, vitTensorShapes } from "../../../convert/src/testing/clip-shapes.js";
import { gaussian } from "./bench-model.js";

/** OpenAI's init scale (std, mean) of a canonical tensor, by its name. */
function initOf(name: string): { std: number; mean?: number } {
  const V = VIT_B16_CONFIG.visionWidth;
  const T = VIT_B16_CONFIG.transformerWidth;
  const p = VIT_B16_CONFIG.visionPatchSize as number;
  if (name.includes("resblocks.")) {
    const W = name.startsWith("transformer.") ? T : V;
    const block: Record<string, { std: number; mean?: number }> = {
      "attn.in_proj_weight": { std: W ** -0.5 },
      "attn.in_proj_bias": { std: 0.02 },
      "attn.out_proj.weight": { std: W ** -0.5 },
      "attn.out_proj.bias": { std: 0.02 },
      "ln_1.weight": { std: 0.1, mean: 1 },
      "ln_1.bias": { std: 0.05 },
      "ln_2.weight": { std: 0.1, mean: 1 },
      "ln_2.bias": { std: 0.05 },
      "mlp.c_fc.weight": { std: (2 * W) ** -0.5 },
      "mlp.c_fc.bias": { std: 0.02 },
      "mlp.c_proj.weight": { std: W ** -0.5 },
      "mlp.c_proj.bias": { std: 0.02 },
    };
    return block[name.replace(/^.*resblocks\.\d+\./, "")];
  }
  const top: Record<string, { std: number; mean?: number }> = {
    positional_embedding: { std: 0.01 },
    text_projection: { std: T ** -0.5 },
    logit_scale: { std: 0, mean: Math.log(100) },
    "visual.class_embedding": { std: V ** -0.5 },
    "visual.positional_embedding": { std: V ** -0.5 },
    "visual.proj": { std: V ** -0.5 },
    "visual.conv1.weight": { std: (3 * p * p) ** -0.5 },
    "visual.ln_pre.weight": { std: 0, mean: 1 },
    "visual.ln_pre.bias": { std: 0 },
    "visual.ln_post.weight": { std: 0, mean: 1 },
    "visual.ln_post.bias": { std: 0 },
    "token_embedding.weight": { std: 0.02 },
    "ln_final.weight": { std: 0, mean: 1 },
    "ln_final.bias": { std: 0 },
  };
  return top[name];
}

export function writeVitB16(outDir: string, seed = 42): void {
  const normal = gaussian(seed);
  const tensors = [...vitTensorShapes(VIT_B16_CONFIG)].map(([name, shape]) => {
    const { std, mean = 0 } = initOf(name);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Uint16Array(n);
    for (let i = 0; i < n; i++) data[i] = f32ToF16(mean + std * normal());
    return { name, dtype: "F16" as const, shape, data: new Uint8Array(data.buffer) };
  });
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "model.safetensors"), encodeSafetensors(tensors));
  writeFileSync(
    join(outDir, "config.json"),
    `${JSON.stringify(configToJson(VIT_B16_CONFIG, { modelName: "random-ViT-B/16", dtype: "F16", sourceSha256: null }), null, 2)}\n`,
  );
}
