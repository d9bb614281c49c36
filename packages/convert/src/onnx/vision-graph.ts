/**
 * vision.onnx: pixel_values [N, 3, R, R] float32 -> image_embeds [N, E] float32, unnormalised,
 * as OpenAI's encode_image (docs/clip-formats.md 1.5):
 *
 *   conv1 (patch p, stride p, no bias) -> [N, W, g, g] -> [N, g*g, W]
 *   prepend class_embedding (token 0), + positional_embedding -> [N, T, W], T = g*g + 1
 *   ln_pre -> Lv residual blocks -> ln_post on token 0 -> @ proj [W, E]
 */
import type { ClipConfig, TensorEntry } from "@unmask/clip";
import { UnmaskError } from "@unmask/mask-format";
import { GraphBuilder, int, ints } from "./graph-builder.js";
import { OnnxDataType } from "./onnx-proto.js";
import { type AttentionKernel, layerNorm, residualBlock } from "./residual-block.js";
import { TowerWeights } from "./tower-weights.js";

export interface TowerGraphOptions {
  config: ClipConfig;
  /** Canonical name -> entry of model.safetensors (absolute offsets). */
  tensors: ReadonlyMap<string, TensorEntry>;
  /** model.safetensors relative to the model directory (the external data location). */
  location: string;
  /** The safetensors path, for error messages. */
  source: string;
  attention?: AttentionKernel;
}

/** Symbolic batch dimension of both graphs' inputs and outputs. */
export const BATCH_DIM = "batch";

export function buildVisionGraph(options: TowerGraphOptions): GraphBuilder {
  const { config } = options;
  if (
    config.architecture !== "vit" ||
    config.visionPatchSize === null ||
    typeof config.visionLayers !== "number"
  )
    throw new UnmaskError(
      "ONNX_UNSUPPORTED_MODEL",
      `${options.source}: ONNX export supports ViT CLIP models; this one is ${config.architecture}`,
      { subject: options.source },
    );
  const p = config.visionPatchSize;
  const width = config.visionWidth;
  const resolution = config.imageResolution;
  const grid = resolution / p;
  const tokens = grid * grid + 1;
  const embed = config.embedDim;
  const g = new GraphBuilder("clip_vision");
  const w = new TowerWeights(g, options.tensors, options.location, options.source);

  const pixels = g.input("pixel_values", OnnxDataType.FLOAT, [BATCH_DIM, 3, resolution, resolution]);
  const patches = g.scoped("visual.embed", () => {
    const conv = g.node(
      "Conv",
      [pixels, w.float32("visual.conv1.weight", [width, 3, p, p])],
      { kernel_shape: ints([p, p]), strides: ints([p, p]) },
      { name: "conv1" },
    );
    const flat = g.node("Reshape", [conv, g.constInt64([0, width, grid * grid])]); // [N, W, g*g]
    const seq = g.node("Transpose", [flat], { perm: ints([0, 2, 1]) }); // [N, g*g, W]
    // The class token broadcast to [N, 1, W].
    const cls = g.node("Reshape", [
      w.float32("visual.class_embedding", [width]),
      g.constInt64([1, 1, width]),
    ]);
    const batch = g.node("Shape", [pixels], { start: int(0), end: int(1) });
    const clsShape = g.node("Concat", [batch, g.constInt64([1, width])], { axis: int(0) });
    const clsTokens = g.node("Expand", [cls, clsShape]);
    const all = g.node("Concat", [clsTokens, seq], { axis: int(1) }); // [N, T, W]
    const positioned = g.node("Add", [all, w.float32("visual.positional_embedding", [tokens, width])]);
    const rows = g.node("Reshape", [positioned, g.constInt64([-1, width])]); // [N*T, W]
    return layerNorm(
      g,
      rows,
      w.float32("visual.ln_pre.weight", [width]),
      w.float32("visual.ln_pre.bias", [width]),
    );
  });

  let x = patches;
  for (let i = 0; i < config.visionLayers; i++)
    x = residualBlock(g, w, x, {
      prefix: `visual.transformer.resblocks.${i}.`,
      width,
      heads: config.visionHeads,
      tokens,
      attention: options.attention ?? "matmul",
    });

  const embeds = g.scoped("visual.head", () => {
    const seq = g.node("Reshape", [x, g.constInt64([-1, tokens, width])]);
    const cls = g.node("Gather", [seq, g.constInt64([0], [])], { axis: int(1) }); // [N, W]
    const normed = layerNorm(
      g,
      cls,
      w.float32("visual.ln_post.weight", [width]),
      w.float32("visual.ln_post.bias", [width]),
    );
    return g.node("MatMul", [normed, w.float32("visual.proj", [width, embed])], {}, { name: "proj" });
  });
  g.output(embeds, "image_embeds", OnnxDataType.FLOAT, [BATCH_DIM, embed]);
  return g;
}
