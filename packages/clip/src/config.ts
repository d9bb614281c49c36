/**
 * CLIP hyper-parameters, inferred from tensor shapes exactly as OpenAI's `build_model` does
 * (docs/clip-formats.md 1.3), and the canonical config.json of a converted model directory.
 */
import { UnmaskError } from "@unmask/mask-format";

export interface ClipConfig {
  architecture: "vit" | "resnet";
  embedDim: number;
  imageResolution: number;
  /** ViT: number of blocks. ResNet: blocks per stage. */
  visionLayers: number | [number, number, number, number];
  visionWidth: number;
  /** ViT only. */
  visionPatchSize: number | null;
  visionHeads: number;
  contextLength: number;
  vocabSize: number;
  transformerWidth: number;
  transformerHeads: number;
  transformerLayers: number;
}

/** Shapes by canonical (OpenAI) key. */
export type ShapeMap = ReadonlyMap<string, readonly number[]>;

function need(shapes: ShapeMap, key: string): readonly number[] {
  const shape = shapes.get(key);
  if (!shape)
    throw new UnmaskError("NOT_A_CLIP_MODEL", `missing tensor ${key}: not an OpenAI CLIP state dict`, {
      subject: key,
    });
  return shape;
}

function distinctIndices(keys: Iterable<string>, prefix: string): number {
  const found = new Set<string>();
  for (const k of keys) if (k.startsWith(prefix)) found.add(k.slice(prefix.length).split(".")[0]);
  return found.size;
}

export function inferConfig(shapes: ShapeMap): ClipConfig {
  const keys = [...shapes.keys()];
  const embedDim = need(shapes, "text_projection")[1];
  const contextLength = need(shapes, "positional_embedding")[0];
  const vocabSize = need(shapes, "token_embedding.weight")[0];
  const transformerWidth = need(shapes, "ln_final.weight")[0];
  const transformerHeads = Math.floor(transformerWidth / 64);
  const transformerLayers = distinctIndices(keys, "transformer.resblocks.");
  const text = { embedDim, contextLength, vocabSize, transformerWidth, transformerHeads, transformerLayers };
  if (shapes.has("visual.proj")) {
    const conv = need(shapes, "visual.conv1.weight");
    const visionWidth = conv[0];
    const visionLayers = keys.filter(
      (k) => k.startsWith("visual.") && k.endsWith(".attn.in_proj_weight"),
    ).length;
    const visionPatchSize = conv[conv.length - 1];
    const grid = Math.round(Math.sqrt(need(shapes, "visual.positional_embedding")[0] - 1));
    return {
      architecture: "vit",
      ...text,
      imageResolution: visionPatchSize * grid,
      visionLayers,
      visionWidth,
      visionPatchSize,
      visionHeads: Math.floor(visionWidth / 64),
    };
  }
  const counts = [1, 2, 3, 4].map((b) => distinctIndices(keys, `visual.layer${b}.`)) as [
    number,
    number,
    number,
    number,
  ];
  const visionWidth = need(shapes, "visual.layer1.0.conv1.weight")[0];
  const outputWidth = Math.round(Math.sqrt(need(shapes, "visual.attnpool.positional_embedding")[0] - 1));
  return {
    architecture: "resnet",
    ...text,
    imageResolution: outputWidth * 32,
    visionLayers: counts,
    visionWidth,
    visionPatchSize: null,
    visionHeads: Math.floor((visionWidth * 32) / 64),
  };
}

/** Heads of a vision width when a config is made by hand (OpenAI: width / 64). */
export function vitConfig(
  partial: Omit<ClipConfig, "architecture" | "visionHeads" | "transformerHeads"> & {
    visionHeads?: number;
    transformerHeads?: number;
  },
): ClipConfig {
  return {
    architecture: "vit",
    ...partial,
    visionHeads: partial.visionHeads ?? Math.floor(partial.visionWidth / 64),
    transformerHeads: partial.transformerHeads ?? Math.floor(partial.transformerWidth / 64),
  };
}

/** OpenAI's preprocessing constants. */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** The config.json of a model directory (snake_case, OpenAI's build_model names). */
export interface ModelDirConfigJson {
  format: "unmask-clip";
  format_version: 1;
  model_name: string | null;
  architecture: "vit" | "resnet";
  embed_dim: number;
  image_resolution: number;
  vision_layers: number | number[];
  vision_width: number;
  vision_patch_size: number | null;
  vision_heads: number;
  context_length: number;
  vocab_size: number;
  transformer_width: number;
  transformer_heads: number;
  transformer_layers: number;
  activation: "quick_gelu";
  dtype: "F16" | "F32";
  source_sha256: string | null;
  preprocess: { resolution: number; interpolation: "bicubic"; mean: number[]; std: number[] };
}

export function configToJson(
  config: ClipConfig,
  extra: { modelName: string | null; dtype: "F16" | "F32"; sourceSha256: string | null },
): ModelDirConfigJson {
  return {
    format: "unmask-clip",
    format_version: 1,
    model_name: extra.modelName,
    architecture: config.architecture,
    embed_dim: config.embedDim,
    image_resolution: config.imageResolution,
    vision_layers: config.visionLayers,
    vision_width: config.visionWidth,
    vision_patch_size: config.visionPatchSize,
    vision_heads: config.visionHeads,
    context_length: config.contextLength,
    vocab_size: config.vocabSize,
    transformer_width: config.transformerWidth,
    transformer_heads: config.transformerHeads,
    transformer_layers: config.transformerLayers,
    activation: "quick_gelu",
    dtype: extra.dtype,
    source_sha256: extra.sourceSha256,
    preprocess: {
      resolution: config.imageResolution,
      interpolation: "bicubic",
      mean: [...CLIP_MEAN],
      std: [...CLIP_STD],
    },
  };
}

export function configFromJson(json: unknown, source = "config.json"): ClipConfig {
  const j = json as Partial<ModelDirConfigJson>;
  const num = (field: keyof ModelDirConfigJson): number => {
    const v = j?.[field];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0)
      throw new UnmaskError("BAD_CONFIG", `${source}: field ${field} must be a positive integer`, {
        subject: field,
      });
    return v;
  };
  if (j?.format !== "unmask-clip")
    throw new UnmaskError("BAD_CONFIG", `${source}: field format must be "unmask-clip"`, {
      subject: "format",
    });
  const architecture = j.architecture === "resnet" ? "resnet" : "vit";
  return {
    architecture,
    embedDim: num("embed_dim"),
    imageResolution: num("image_resolution"),
    visionLayers:
      architecture === "vit" ? num("vision_layers") : (j.vision_layers as [number, number, number, number]),
    visionWidth: num("vision_width"),
    visionPatchSize: architecture === "vit" ? num("vision_patch_size") : null,
    visionHeads: num("vision_heads"),
    contextLength: num("context_length"),
    vocabSize: num("vocab_size"),
    transformerWidth: num("transformer_width"),
    transformerHeads: num("transformer_heads"),
    transformerLayers: num("transformer_layers"),
  };
}
