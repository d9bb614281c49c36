/**
 * The shape of every canonical tensor of a ViT CLIP (docs/clip-formats.md 1.2), for writing
 * synthetic checkpoints of real size in tests and benches.
 */
import { type ClipConfig, vitConfig, vitTensorNames } from "@unmask/clip";

/** ViT-B/16's hyper-parameters (docs/clip-formats.md 1.2). */
export const VIT_B16_CONFIG: ClipConfig = vitConfig({
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

export function vitTensorShapes(config: ClipConfig): Map<string, number[]> {
  const W = config.visionWidth;
  const D = config.transformerWidth;
  const p = config.visionPatchSize ?? 0;
  const grid = config.imageResolution / p;
  const block = (width: number, name: string): number[] => {
    if (name.endsWith("in_proj_weight")) return [3 * width, width];
    if (name.endsWith("in_proj_bias")) return [3 * width];
    if (name.endsWith("out_proj.weight")) return [width, width];
    if (name.endsWith("c_fc.weight")) return [4 * width, width];
    if (name.endsWith("c_fc.bias")) return [4 * width];
    if (name.endsWith("c_proj.weight")) return [width, 4 * width];
    return [width];
  };
  const fixed: Record<string, number[]> = {
    positional_embedding: [config.contextLength, D],
    text_projection: [D, config.embedDim],
    logit_scale: [],
    "visual.class_embedding": [W],
    "visual.positional_embedding": [grid * grid + 1, W],
    "visual.proj": [W, config.embedDim],
    "visual.conv1.weight": [W, 3, p, p],
    "token_embedding.weight": [config.vocabSize, D],
  };
  const shapes = new Map<string, number[]>();
  for (const name of vitTensorNames(config)) {
    if (fixed[name]) shapes.set(name, fixed[name]);
    else if (name.startsWith("visual.transformer.")) shapes.set(name, block(W, name));
    else if (name.startsWith("transformer.")) shapes.set(name, block(D, name));
    else shapes.set(name, [name.startsWith("visual.") ? W : D]);
  }
  return shapes;
}
