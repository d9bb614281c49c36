/**
 * From an unpickled checkpoint root to a flat state dict (name -> tensor reference):
 * - TorchScript archives: walk the module attribute bags (docs/clip-formats.md 2.3); a tensor
 *   attribute becomes `prefix + name`, a submodule recurses with `prefix + name + "."`.
 * - torch.save archives: the dict itself, or the dict under a `state_dict` / `model` /
 *   `model_state_dict` wrapper (training checkpoints), non-tensor values skipped.
 * Cycles (possible through the memo) are cut and nesting is capped.
 */
import { fail } from "./errors.js";
import { PickleDict, PickleObject, type PickleValue } from "./pickle-vm.js";
import { isTensorRef, type TensorRef } from "./torch-tensor.js";

/** Module nesting in a CLIP is ~6 deep; anything deeper is hostile or not a CLIP. */
export const MAX_MODULE_DEPTH = 64;
/** Wrapper keys of training checkpoints, tried in order. */
export const STATE_DICT_WRAPPERS = ["state_dict", "model", "model_state_dict", "module"] as const;

function walkModule(
  object: PickleObject,
  prefix: string,
  out: Map<string, TensorRef>,
  seen: Set<PickleObject>,
  depth: number,
  source: string,
): void {
  if (depth > MAX_MODULE_DEPTH)
    fail("PICKLE_LIMIT", `${source}: modules nest deeper than ${MAX_MODULE_DEPTH} at ${prefix}`, prefix);
  if (seen.has(object)) return;
  seen.add(object);
  if (!object.attributes) return;
  for (const [name, value] of object.attributes.entries) {
    if (typeof name !== "string") continue;
    if (isTensorRef(value)) out.set(`${prefix}${name}`, value);
    else if (value instanceof PickleObject)
      walkModule(value, `${prefix}${name}.`, out, seen, depth + 1, source);
  }
}

function tensorsOf(dict: PickleDict): Map<string, TensorRef> {
  const out = new Map<string, TensorRef>();
  for (const [key, value] of dict.entries)
    if (typeof key === "string" && isTensorRef(value)) out.set(key, value);
  return out;
}

/** The flat state dict of a checkpoint root (a TorchScript module or a dict). */
export function extractStateDict(root: PickleValue, source: string): Map<string, TensorRef> {
  if (root instanceof PickleObject) {
    const out = new Map<string, TensorRef>();
    walkModule(root, "", out, new Set(), 0, source);
    return out;
  }
  if (root instanceof PickleDict) {
    const direct = tensorsOf(root);
    if (direct.size > 0) return direct;
    for (const wrapper of STATE_DICT_WRAPPERS) {
      const inner = root.entries.get(wrapper);
      if (inner instanceof PickleDict) {
        const tensors = tensorsOf(inner);
        if (tensors.size > 0) return tensors;
      }
      if (inner instanceof PickleObject) return extractStateDict(inner, source);
    }
  }
  return fail(
    "NOT_A_CLIP_MODEL",
    `${source}: holds no state dict (no tensors at the top level or under ${STATE_DICT_WRAPPERS.join("/")})`,
    source,
  );
}
