/**
 * Folding a mask into the weights: W' = M * W for the masked tensors only, built in the model's
 * stored dtype from the bytes of model.safetensors. Nothing on disk changes; the result is handed
 * to onnxruntime in memory (see base-model.ts).
 *
 * Before anything is folded the mask is checked against the model: every masked tensor must
 * exist with the same shape, be read by an ONNX initializer, and the base-model fingerprint
 * (SHA-256 over the masked tensors' values, mask-format SPEC section 6) must match.
 */
import { type DType, toFloat32 } from "@unmask/clip";
import {
  applyMask,
  assertBaseModel,
  type DecodedMask,
  fingerprintTensors,
  UnmaskError,
  type WeightDType,
} from "@unmask/mask-format";
import type { ModelDir } from "./model-dir.js";

export interface FoldedWeight {
  /** Canonical tensor name (as in the mask and model.safetensors). */
  tensor: string;
  dtype: DType;
  shape: number[];
  /** W' in the stored dtype, little-endian (what the initializer would read from the file). */
  bytes: Uint8Array;
}

const FOLDABLE = new Set<DType>(["F32", "F16", "BF16"]);

const fingerprintCache = new WeakMap<ModelDir, Map<string, Promise<string>>>();

/**
 * The base-model fingerprint of `model` over `tensorNames` (in that order), cached per model and
 * list, so a second mask over the same tensors costs nothing.
 */
export function modelFingerprint(model: ModelDir, tensorNames: readonly string[]): Promise<string> {
  let perModel = fingerprintCache.get(model);
  if (!perModel) {
    perModel = new Map();
    fingerprintCache.set(model, perModel);
  }
  const key = tensorNames.join("\n");
  let pending = perModel.get(key);
  if (!pending) {
    pending = (async () => {
      const tensors = [];
      for (const name of tensorNames) {
        const entry = model.weights.entry(name);
        tensors.push({ name, shape: entry.shape, values: await model.weights.readFloat32(name) });
      }
      return fingerprintTensors(tensors);
    })();
    pending.catch(() => perModel?.delete(key));
    perModel.set(key, pending);
  }
  return pending;
}

/**
 * Checks that `mask` belongs to `model`.
 * @throws UnmaskError MASK_TENSOR_MISMATCH (a tensor missing, of another shape, or not a float
 *   initializer of a graph), FINGERPRINT_MISMATCH (made for another base model)
 */
export async function checkMaskAgainstModel(model: ModelDir, mask: DecodedMask): Promise<void> {
  for (const t of mask.tensors) {
    const entry = model.weights.tensors.get(t.name);
    if (!entry)
      throw new UnmaskError(
        "MASK_TENSOR_MISMATCH",
        `${mask.source}: masks tensor ${t.name}, which ${model.weights.path} does not have`,
        { subject: t.name },
      );
    if (entry.shape.length !== t.shape.length || entry.shape.some((d, i) => d !== t.shape[i]))
      throw new UnmaskError(
        "MASK_TENSOR_MISMATCH",
        `${mask.source}: tensor ${t.name} has shape [${t.shape.join(", ")}] in the mask, [${entry.shape.join(", ")}] in the model`,
        { subject: t.name },
      );
    if (!FOLDABLE.has(entry.dtype))
      throw new UnmaskError(
        "MASK_TENSOR_MISMATCH",
        `${mask.source}: tensor ${t.name} is ${entry.dtype} in the model; only F32, F16 and BF16 weights can be masked`,
        { subject: t.name },
      );
    const inGraph =
      model.vision.initializersByTensor.has(t.name) ||
      (model.text?.initializersByTensor.has(t.name) ?? false);
    if (!inGraph)
      throw new UnmaskError(
        "MASK_TENSOR_MISMATCH",
        `${mask.source}: tensor ${t.name} is not read directly by any initializer of ${model.vision.path}${model.text ? ` or ${model.text.path}` : ""}, so the mask cannot be folded in`,
        { subject: t.name },
      );
  }
  assertBaseModel(mask, await modelFingerprint(model, mask.tensorNames));
}

/**
 * Builds W' = M * W for every tensor of `mask` (checked first with checkMaskAgainstModel).
 * Memory: one copy of the masked tensors in their stored dtype.
 */
export async function foldMask(model: ModelDir, mask: DecodedMask): Promise<FoldedWeight[]> {
  await checkMaskAgainstModel(model, mask);
  const folded: FoldedWeight[] = [];
  for (const t of mask.tensors) {
    const entry = model.weights.entry(t.name);
    const bytes = await model.weights.readBytes(t.name);
    applyMask(bytes, t.bits(), { dtype: entry.dtype as WeightDType, inPlace: true });
    folded.push({ tensor: t.name, dtype: entry.dtype, shape: [...entry.shape], bytes });
  }
  return folded;
}

/** The unmasked weights of the same tensors (for zero-shot runs through a shared session). */
export async function readBaseWeights(
  model: ModelDir,
  tensorNames: readonly string[],
): Promise<FoldedWeight[]> {
  const out: FoldedWeight[] = [];
  for (const name of tensorNames) {
    const entry = model.weights.entry(name);
    out.push({
      tensor: name,
      dtype: entry.dtype,
      shape: [...entry.shape],
      bytes: await model.weights.readBytes(name),
    });
  }
  return out;
}

/** Float32 view of a folded weight (tests, CPU references). */
export function foldedToFloat32(weight: FoldedWeight): Float32Array {
  return toFloat32(weight.bytes, weight.dtype, weight.tensor);
}
