/**
 * ViT-B/16, the size most CLIP users run, as random-weight stand-ins for benches: its config, and
 * a model directory (model.safetensors, config.json, vision.onnx) with random weights of exactly
 * its shapes, so that conversion, onnxruntime and inference benches run at real size without a
 * download.
 */
import { mkdir } from "node:fs/promises";
import type { ClipConfig } from "@unmask/clip";
import type { AttentionKernel } from "../onnx/residual-block.js";
import { type OnnxTower, writeOnnxModels } from "../onnx/write-onnx-models.js";
import { VIT_B16_CONFIG } from "./clip-shapes.js";
import { randomCanonicalModel, type WeightDtype } from "./random-model.js";

export interface RandomVitB16Options {
  /** Created when missing. */
  modelDir: string;
  /** How model.safetensors stores the weights (default "F16", as OpenAI ships them). */
  dtype?: WeightDtype;
  /** Seeds the weights (default 1). */
  seed?: number;
  /** The ONNX graphs to write next to the weights (default ["vision"]; [] for none). */
  towers?: readonly OnnxTower[];
  /** Attention ops of the graphs (writeOnnxModels' default when left out). */
  attention?: AttentionKernel;
}

/** Writes a random-weight ViT-B/16 model directory; returns the paths written. */
export async function writeRandomVitB16ModelDir(
  options: RandomVitB16Options,
): Promise<{ config: ClipConfig; safetensorsPath: string; onnxPaths: Partial<Record<OnnxTower, string>> }> {
  const config = VIT_B16_CONFIG;
  await mkdir(options.modelDir, { recursive: true });
  const { safetensorsPath } = await randomCanonicalModel({
    modelDir: options.modelDir,
    config,
    dtype: options.dtype ?? "F16",
    seed: options.seed,
  });
  const towers = options.towers ?? ["vision"];
  const onnxPaths =
    towers.length === 0
      ? {}
      : (await writeOnnxModels({ modelDir: options.modelDir, config, towers, attention: options.attention }))
          .paths;
  return { config, safetensorsPath, onnxPaths };
}
