/**
 * State-dict key names -> canonical OpenAI names (docs/clip-formats.md 1.2, 4.3).
 *
 * OpenAI and open_clip share one layout; what differs is packaging: `module.` (DataParallel) and
 * `_orig_mod.` (torch.compile) prefixes, open_clip's CustomTextCLIP putting the text tower under
 * `text.`, and the scalar extras OpenAI state dicts carry. Variants the canonical layout cannot
 * express (LayerScale, SigLIP's logit_bias, timm vision towers, a Linear text projection,
 * attentional poolers) are refused rather than silently converted wrong.
 */
import { inferConfig, TEXT_BLOCK_PREFIX, VISION_BLOCK_PREFIX, vitTensorNames } from "@unmask/clip";
import { fail } from "./errors.js";

/** Scalars and buffers that carry no weight: dropped (OpenAI's build_model deletes the first three). */
export const DROPPED_EXTRAS = new Set(["input_resolution", "context_length", "vocab_size"]);

/** Prefixes added by training wrappers, stripped when every key has them. */
const WRAPPER_PREFIXES = ["module.", "_orig_mod."];

/** open_clip CustomTextCLIP text-tower names, relative to `text.`. */
const CUSTOM_TEXT_KEYS = [
  /^transformer\./,
  /^token_embedding\./,
  /^positional_embedding$/,
  /^ln_final\./,
  /^text_projection$/,
];

const UNSUPPORTED: [RegExp, string][] = [
  [/\.ls_[12]\.gamma$/, "LayerScale (open_clip ls_init_value)"],
  [/^logit_bias$/, "SigLIP (logit_bias)"],
  [/^visual\.trunk\./, "a timm vision tower"],
  [/^visual\.attn_pool\./, "an attentional pooler"],
  [/^(text\.)?text_projection\.(weight|bias)$/, "a Linear text projection"],
  [
    /^text\.(?!transformer\.|token_embedding\.|positional_embedding$|ln_final\.|text_projection$)/,
    "a custom text tower",
  ],
];

function isDropped(name: string): boolean {
  return (
    DROPPED_EXTRAS.has(name) ||
    name === "attn_mask" ||
    name.endsWith(".attn_mask") ||
    name.endsWith(".position_ids")
  );
}

/**
 * Renames a state dict to canonical names, dropping harmless extras. Refuses unsupported
 * variants (UNSUPPORTED_MODEL) and two keys that land on one name (UNKNOWN_TENSOR).
 */
export function canonicalizeNames<T>(tensors: ReadonlyMap<string, T>, source: string): Map<string, T> {
  let names = [...tensors.keys()];
  const renamed = new Map(names.map((n) => [n, n]));
  for (const prefix of WRAPPER_PREFIXES)
    if (names.length > 0 && names.every((n) => renamed.get(n)!.startsWith(prefix)))
      for (const n of names) renamed.set(n, renamed.get(n)!.slice(prefix.length));
  names = names.filter((n) => !isDropped(renamed.get(n)!));
  const out = new Map<string, T>();
  for (const original of names) {
    let name = renamed.get(original)!;
    for (const [pattern, what] of UNSUPPORTED)
      if (pattern.test(name))
        fail(
          "UNSUPPORTED_MODEL",
          `${source}: tensor ${original} belongs to ${what}, which unmask's canonical CLIP cannot represent`,
          original,
        );
    if (name.startsWith("text.") && CUSTOM_TEXT_KEYS.some((p) => p.test(name.slice(5)))) name = name.slice(5);
    if (out.has(name))
      fail("UNKNOWN_TENSOR", `${source}: two tensors map to ${name} (one is ${original})`, original);
    out.set(name, tensors.get(original)!);
  }
  return out;
}

/**
 * Checks a canonical ViT state dict against the names the inferred config demands: every
 * expected tensor present, nothing unknown left over. ResNet state dicts are kept whole.
 */
export function selectCanonicalTensors<T extends { shape: readonly number[] }>(
  tensors: ReadonlyMap<string, T>,
  source: string,
): { config: ReturnType<typeof inferConfig>; names: string[] } {
  const shapes = new Map([...tensors].map(([k, v]) => [k, v.shape]));
  const config = inferConfig(shapes);
  if (config.architecture === "resnet") return { config, names: [...tensors.keys()] };
  const expected = vitTensorNames(config);
  for (const name of expected)
    if (!tensors.has(name)) fail("NOT_A_CLIP_MODEL", `${source}: missing tensor ${name}`, name);
  const known = new Set(expected);
  for (const name of tensors.keys())
    if (!known.has(name)) {
      const hint =
        name.startsWith(VISION_BLOCK_PREFIX) || name.startsWith(TEXT_BLOCK_PREFIX)
          ? " (block tensors must be contiguous 0..N-1 and match OpenAI's block layout)"
          : "";
      fail("UNKNOWN_TENSOR", `${source}: unexpected tensor ${name}${hint}`, name);
    }
  return { config, names: expected };
}
