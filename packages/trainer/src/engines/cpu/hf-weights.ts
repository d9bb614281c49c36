/**
 * readHfWeightsFloat32: a Hugging Face `CLIPModel` safetensors file as canonical (OpenAI-named)
 * float32 tensors, through @unmask/clip's mapping plan (q/k/v rows concatenated into
 * in_proj_weight, projections transposed). For small models and tests: everything is read into
 * memory. A converted model directory (@unmask/convert) is read by the trainer's loadModelDir.
 */
import { type ClipConfig, inferConfig, planFromHf, SafetensorsFile } from "@unmask/clip";
import type { FloatTensor } from "../../engine.js";

export interface CanonicalWeights {
  weights: Map<string, FloatTensor>;
  config: ClipConfig;
  /** exp(logit_scale) */
  logitScale: number;
}

export async function readHfWeightsFloat32(path: string): Promise<CanonicalWeights> {
  const file = await SafetensorsFile.open(path);
  try {
    const plan = planFromHf(file.tensors.keys());
    const weights = new Map<string, FloatTensor>();
    for (const [name, step] of plan) {
      if (step.op === "copy") {
        weights.set(name, { shape: file.entry(step.from).shape, data: await file.readFloat32(step.from) });
      } else if (step.op === "concat-rows") {
        const parts = await Promise.all(step.from.map((s) => file.readFloat32(s)));
        const shape = [...file.entry(step.from[0]).shape];
        shape[0] *= parts.length;
        const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
        let offset = 0;
        for (const p of parts) {
          data.set(p, offset);
          offset += p.length;
        }
        weights.set(name, { shape, data });
      } else {
        const [rows, cols] = file.entry(step.from).shape;
        const source = await file.readFloat32(step.from);
        const data = new Float32Array(rows * cols);
        for (let r = 0; r < rows; r++)
          for (let c = 0; c < cols; c++) data[c * rows + r] = source[r * cols + c];
        weights.set(name, { shape: [cols, rows], data });
      }
    }
    const config = inferConfig(new Map([...weights].map(([k, t]) => [k, t.shape])));
    const logitScale = Math.exp(weights.get("logit_scale")?.data[0] ?? Math.log(1 / 0.07));
    return { weights, config, logitScale };
  } finally {
    await file.close();
  }
}
