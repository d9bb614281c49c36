/**
 * Canonical model directories (model.safetensors with OpenAI names + config.json) written
 * without going through convert(): from given tensors, or with random weights of the shapes a
 * config implies (benches of real size). Test and bench helpers, not the package's API.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type ClipConfig,
  configToJson,
  fromFloat32,
  type TensorToWrite,
  writeSafetensors,
} from "@unmask/clip";
import { vitTensorShapes } from "./clip-shapes.js";

export type WeightDtype = "F32" | "F16";

/** Writes model.safetensors + config.json; returns the safetensors path. */
export async function writeCanonicalModelDir(
  modelDir: string,
  config: ClipConfig,
  tensors: TensorToWrite[],
  dtype: WeightDtype,
): Promise<string> {
  const safetensorsPath = join(modelDir, "model.safetensors");
  await writeSafetensors(safetensorsPath, tensors, { metadata: { format: "pt", "unmask.format": "clip" } });
  const json = configToJson(config, { modelName: null, dtype, sourceSha256: null });
  await writeFile(join(modelDir, "config.json"), `${JSON.stringify(json, null, 2)}\n`);
  return safetensorsPath;
}

/** xorshift32 -> roughly normal values (sum of 4 uniforms), deterministic per seed. */
function randomValues(n: number, std: number, mean: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  const scale = std * Math.sqrt(3); // the sum of 4 U(-1,1) has variance 4/3
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let k = 0; k < 4; k++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      sum += (s >>> 0) / 2147483648 - 1;
    }
    out[i] = mean + (sum / 2) * scale;
  }
  return out;
}

/**
 * A canonical model directory with random weights of the shapes `config` implies (for benches:
 * e.g. a ViT-B/16-shaped model). LayerNorm weights are ~1, everything else small, as CLIP's init.
 */
export async function randomCanonicalModel(options: {
  modelDir: string;
  config: ClipConfig;
  dtype: WeightDtype;
  seed?: number;
}): Promise<{ safetensorsPath: string }> {
  let seed = options.seed ?? 1;
  const tensors: TensorToWrite[] = [];
  for (const [name, shape] of vitTensorShapes(options.config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isLnWeight = /ln_\w+\.weight$|ln_final\.weight$/.test(name);
    const fanIn = shape.length === 2 ? shape[shape.length - 1] : 64;
    const std = name === "logit_scale" ? 0 : isLnWeight ? 0.1 : fanIn ** -0.5;
    const mean = isLnWeight ? 1 : name === "logit_scale" ? Math.log(100) : 0;
    const s = seed++;
    tensors.push({
      name,
      dtype: options.dtype,
      shape,
      data: () => fromFloat32(randomValues(n, std, mean, s * 2654435761), options.dtype),
    });
  }
  const safetensorsPath = await writeCanonicalModelDir(
    options.modelDir,
    options.config,
    tensors,
    options.dtype,
  );
  return { safetensorsPath };
}
