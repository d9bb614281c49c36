/**
 * Canonical weight names (OpenAI's state-dict keys) and the mapping from Hugging Face
 * transformers `CLIPModel` names (docs/clip-formats.md 4.2).
 *
 * The HF mapping is a plan, not a copy: each canonical tensor says which HF tensors it comes from
 * and how (as is, rows concatenated, or a 2-D transpose), so a converter can stream it.
 */
import { UnmaskError } from "@unmask/mask-format";
import type { ClipConfig } from "./config.js";

export const VISION_BLOCK_PREFIX = "visual.transformer.resblocks.";
export const TEXT_BLOCK_PREFIX = "transformer.resblocks.";

/** Per-block tensor names (the same for vision and text towers). */
export const BLOCK_TENSORS = [
  "attn.in_proj_weight",
  "attn.in_proj_bias",
  "attn.out_proj.weight",
  "attn.out_proj.bias",
  "ln_1.weight",
  "ln_1.bias",
  "mlp.c_fc.weight",
  "mlp.c_fc.bias",
  "mlp.c_proj.weight",
  "mlp.c_proj.bias",
  "ln_2.weight",
  "ln_2.bias",
] as const;

/** Every tensor a ViT CLIP has, in OpenAI's registration order. */
export function vitTensorNames(config: ClipConfig): string[] {
  const layers = config.visionLayers as number;
  const names = [
    "positional_embedding",
    "text_projection",
    "logit_scale",
    "visual.class_embedding",
    "visual.positional_embedding",
    "visual.proj",
    "visual.conv1.weight",
    "visual.ln_pre.weight",
    "visual.ln_pre.bias",
  ];
  for (let i = 0; i < layers; i++)
    for (const t of BLOCK_TENSORS) names.push(`${VISION_BLOCK_PREFIX}${i}.${t}`);
  names.push("visual.ln_post.weight", "visual.ln_post.bias");
  for (let i = 0; i < config.transformerLayers; i++)
    for (const t of BLOCK_TENSORS) names.push(`${TEXT_BLOCK_PREFIX}${i}.${t}`);
  names.push("token_embedding.weight", "ln_final.weight", "ln_final.bias");
  return names;
}

/** The published R-AMT masked set: patch embedding + every vision block's attention in/out weights. */
export function defaultMaskedTensors(
  config: ClipConfig,
  options: { mlp?: boolean; blocks?: number[]; patchEmbedding?: boolean } = {},
): string[] {
  const layers = config.visionLayers as number;
  const blocks = options.blocks ?? Array.from({ length: layers }, (_, i) => i);
  const names = options.patchEmbedding === false ? [] : ["visual.conv1.weight"];
  for (const i of blocks) {
    if (!Number.isInteger(i) || i < 0 || i >= layers)
      throw new UnmaskError(
        "BAD_OPTION",
        `block ${i} does not exist (the model has ${layers} vision blocks)`,
        { subject: "blocks" },
      );
    names.push(
      `${VISION_BLOCK_PREFIX}${i}.attn.in_proj_weight`,
      `${VISION_BLOCK_PREFIX}${i}.attn.out_proj.weight`,
    );
    if (options.mlp)
      names.push(
        `${VISION_BLOCK_PREFIX}${i}.mlp.c_fc.weight`,
        `${VISION_BLOCK_PREFIX}${i}.mlp.c_proj.weight`,
      );
  }
  return names;
}

export type HfSourcePlan =
  | { op: "copy"; from: string }
  | { op: "concat-rows"; from: string[] }
  | { op: "transpose"; from: string };

const HF_BLOCK: [string, string][] = [
  ["attn.out_proj.weight", "self_attn.out_proj.weight"],
  ["attn.out_proj.bias", "self_attn.out_proj.bias"],
  ["ln_1.weight", "layer_norm1.weight"],
  ["ln_1.bias", "layer_norm1.bias"],
  ["ln_2.weight", "layer_norm2.weight"],
  ["ln_2.bias", "layer_norm2.bias"],
  ["mlp.c_fc.weight", "mlp.fc1.weight"],
  ["mlp.c_fc.bias", "mlp.fc1.bias"],
  ["mlp.c_proj.weight", "mlp.fc2.weight"],
  ["mlp.c_proj.bias", "mlp.fc2.bias"],
];

const HF_FIXED: [string, HfSourcePlan][] = [
  ["visual.conv1.weight", { op: "copy", from: "vision_model.embeddings.patch_embedding.weight" }],
  ["visual.class_embedding", { op: "copy", from: "vision_model.embeddings.class_embedding" }],
  ["visual.positional_embedding", { op: "copy", from: "vision_model.embeddings.position_embedding.weight" }],
  ["visual.ln_pre.weight", { op: "copy", from: "vision_model.pre_layrnorm.weight" }],
  ["visual.ln_pre.bias", { op: "copy", from: "vision_model.pre_layrnorm.bias" }],
  ["visual.ln_post.weight", { op: "copy", from: "vision_model.post_layernorm.weight" }],
  ["visual.ln_post.bias", { op: "copy", from: "vision_model.post_layernorm.bias" }],
  ["visual.proj", { op: "transpose", from: "visual_projection.weight" }],
  ["token_embedding.weight", { op: "copy", from: "text_model.embeddings.token_embedding.weight" }],
  ["positional_embedding", { op: "copy", from: "text_model.embeddings.position_embedding.weight" }],
  ["ln_final.weight", { op: "copy", from: "text_model.final_layer_norm.weight" }],
  ["ln_final.bias", { op: "copy", from: "text_model.final_layer_norm.bias" }],
  ["text_projection", { op: "transpose", from: "text_projection.weight" }],
  ["logit_scale", { op: "copy", from: "logit_scale" }],
];

/** HF keys that carry no weight and are dropped (older checkpoints store position_ids buffers). */
export const HF_IGNORED_KEYS = new Set([
  "vision_model.embeddings.position_ids",
  "text_model.embeddings.position_ids",
]);

/**
 * Plans the canonical state dict from a set of HF key names. Refuses any HF key the plan does not
 * consume (so nothing is silently lost) and any canonical key whose sources are missing.
 */
export function planFromHf(hfKeys: Iterable<string>): Map<string, HfSourcePlan> {
  const present = new Set(hfKeys);
  const plan = new Map<string, HfSourcePlan>(HF_FIXED);
  const blockCount = (prefix: string) => {
    const found = new Set<number>();
    for (const k of present)
      if (k.startsWith(prefix)) found.add(Number(k.slice(prefix.length).split(".")[0]));
    return found.size;
  };
  for (const [tower, hfPrefix, ourPrefix] of [
    ["vision", "vision_model.encoder.layers.", VISION_BLOCK_PREFIX],
    ["text", "text_model.encoder.layers.", TEXT_BLOCK_PREFIX],
  ] as const) {
    void tower;
    const n = blockCount(hfPrefix);
    for (let i = 0; i < n; i++) {
      const h = `${hfPrefix}${i}.`;
      const o = `${ourPrefix}${i}.`;
      plan.set(`${o}attn.in_proj_weight`, {
        op: "concat-rows",
        from: ["q", "k", "v"].map((x) => `${h}self_attn.${x}_proj.weight`),
      });
      plan.set(`${o}attn.in_proj_bias`, {
        op: "concat-rows",
        from: ["q", "k", "v"].map((x) => `${h}self_attn.${x}_proj.bias`),
      });
      for (const [ours, theirs] of HF_BLOCK) plan.set(`${o}${ours}`, { op: "copy", from: `${h}${theirs}` });
    }
  }
  const used = new Set<string>();
  for (const [key, p] of plan) {
    const sources = p.op === "concat-rows" ? p.from : [p.from];
    for (const s of sources) {
      if (!present.has(s))
        throw new UnmaskError("NOT_A_CLIP_MODEL", `Hugging Face checkpoint lacks ${s} (needed for ${key})`, {
          subject: s,
        });
      used.add(s);
    }
  }
  for (const k of present)
    if (!used.has(k) && !HF_IGNORED_KEYS.has(k))
      throw new UnmaskError("UNKNOWN_TENSOR", `Hugging Face checkpoint has an unexpected tensor ${k}`, {
        subject: k,
      });
  return plan;
}

/** The reverse: canonical -> HF names, for exporting an HF layout. */
export function hfNameFor(canonical: string): string | undefined {
  for (const [ours, p] of HF_FIXED) if (ours === canonical && p.op !== "concat-rows") return p.from;
  for (const [prefixOurs, prefixHf] of [
    [VISION_BLOCK_PREFIX, "vision_model.encoder.layers."],
    [TEXT_BLOCK_PREFIX, "text_model.encoder.layers."],
  ] as const) {
    if (!canonical.startsWith(prefixOurs)) continue;
    const rest = canonical.slice(prefixOurs.length);
    const [index, ...tail] = rest.split(".");
    const name = tail.join(".");
    const pair = HF_BLOCK.find(([ours]) => ours === name);
    if (pair) return `${prefixHf}${index}.${pair[1]}`;
  }
  return undefined;
}
