/**
 * Imports a mask trained by the published R-AMT code into a .umask file.
 *
 * The R-AMT trainer saves `torch.save({"state_dict": {...}, "epoch", "optimizer", ...})`, where
 * each masked module's `<module>.mask_real` entry holds Python bytes: the binarised mask,
 * flattened row-major and packed most-significant-bit first, zero-padded (fixtures/README.md).
 * The checkpoint is read with the same safe pickle reader as model checkpoints (no code runs;
 * Python bytes arrive as `_codecs.encode(str, "latin1")`, the one encoder call allowed).
 *
 * Keys are relative to the image encoder: `conv1.mask_real` -> `visual.conv1.weight`, an MHA's
 * `...attn.mask_real` -> `...attn.in_proj_weight`, any other `X.mask_real` -> `visual.X.weight`.
 *
 * Where the shapes and the base-model fingerprint come from (one of):
 * - `modelDir`: the canonical model directory the mask was trained on; shapes from its
 *   model.safetensors header, the fingerprint from the masked tensors' values, the name from its
 *   metadata. This is the normal path (`unmask import-mask CKPT --model DIR`).
 * - `shapes` + `baseModel`: an explicit shape map and identity, for when the model directory is
 *   not at hand (tests, or re-labelling a mask for a known fingerprint).
 */
import { join } from "node:path";
import { SafetensorsFile, shapeNumel } from "@unmask/clip";
import { encodeMask, fingerprintTensors, type MaskInput, packBits } from "@unmask/mask-format";
import { writeMaskFile } from "@unmask/mask-format/node";
import { openTorchFile } from "./checkpoint.js";
import { fail } from "./errors.js";
import { PickleDict } from "./pickle-vm.js";
import { isTensorRef, readTensorBytes } from "./torch-tensor.js";

export const MASK_KEY_SUFFIX = ".mask_real";

/** Prefixes that may precede the image-encoder-relative key (DataParallel, wrappers). */
const MASK_KEY_PREFIXES = ["module.", "model.", "image_encoder.", "visual."];

/** The canonical weight a published R-AMT `...mask_real` key masks. */
export function canonicalNameForMaskKey(key: string): string {
  if (!key.endsWith(MASK_KEY_SUFFIX)) fail("MASK_MISMATCH", `${key} is not a ...mask_real key`, key);
  let module = key.slice(0, -MASK_KEY_SUFFIX.length);
  for (let changed = true; changed; ) {
    changed = false;
    for (const prefix of MASK_KEY_PREFIXES)
      if (module.startsWith(prefix)) {
        module = module.slice(prefix.length);
        changed = true;
      }
  }
  // nn.MultiheadAttention keeps its packed q/k/v weight as in_proj_weight, not attn.weight.
  if (module.endsWith(".attn") || module === "attn") return `visual.${module}.in_proj_weight`;
  return `visual.${module}.weight`;
}

export interface OfficialMaskEntry {
  /** The key in the checkpoint, e.g. "transformer.resblocks.0.attn.mask_real". */
  officialKey: string;
  /** The canonical weight name, e.g. "visual.transformer.resblocks.0.attn.in_proj_weight". */
  name: string;
  /** Packed bits as stored (MSB first, 1 = keep), or unpacked 0/1 bytes from a uint8 tensor. */
  bytes: Uint8Array;
  packed: boolean;
}

/** Reads the `...mask_real` entries of a published R-AMT checkpoint, in checkpoint order. */
export async function readOfficialMasks(
  path: string,
): Promise<{ entries: OfficialMaskEntry[]; epoch: number | null }> {
  const file = await openTorchFile(path);
  try {
    const root = file.root;
    let dict: PickleDict | null = null;
    if (root instanceof PickleDict) {
      const inner = root.entries.get("state_dict");
      dict = inner instanceof PickleDict ? inner : root;
    }
    if (!dict) fail("MASK_MISMATCH", `${path}: not a dict checkpoint (expected {"state_dict": {...}})`, path);
    const entries: OfficialMaskEntry[] = [];
    for (const [key, value] of dict.entries) {
      if (typeof key !== "string" || !key.endsWith(MASK_KEY_SUFFIX)) continue;
      const name = canonicalNameForMaskKey(key);
      if (value instanceof Uint8Array) entries.push({ officialKey: key, name, bytes: value, packed: true });
      else if (isTensorRef(value) && (value.dtype === "U8" || value.dtype === "BOOL"))
        entries.push({
          officialKey: key,
          name,
          bytes: await readTensorBytes(value, file.byteOrder),
          packed: false,
        });
      else fail("MASK_MISMATCH", `${path}: ${key} holds neither bytes nor a uint8/bool tensor`, key);
    }
    if (entries.length === 0)
      fail("MASK_MISMATCH", `${path}: no ...mask_real entries in its state_dict`, path);
    const epoch = root instanceof PickleDict ? root.entries.get("epoch") : undefined;
    return { entries, epoch: typeof epoch === "number" ? epoch : null };
  } finally {
    await file.close();
  }
}

export interface ImportMaskOptions {
  /** The canonical model directory the mask was trained on (shapes, fingerprint, name). */
  modelDir?: string;
  /** Without `modelDir`: shapes by canonical name ... */
  shapes?: ReadonlyMap<string, readonly number[]>;
  /** ... and the base model identity. */
  baseModel?: { name: string | null; fingerprint: string };
  /** Stored in the .umask (the import adds `source` and `epoch` to it). */
  recipe?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
}

export interface ImportMaskResult {
  mask: MaskInput;
  /** canonical name -> official key, in mask order. */
  officialKeys: Map<string, string>;
  /** Masked-off entries over all tensors. */
  zeros: number;
  parameters: number;
}

/** Packed bits for an entry, checked against the weight's element count. */
function packedBitsFor(entry: OfficialMaskEntry, numel: number, path: string): Uint8Array {
  if (!entry.packed) {
    if (entry.bytes.byteLength !== numel)
      fail(
        "MASK_MISMATCH",
        `${path}: ${entry.officialKey} holds ${entry.bytes.byteLength} values, ${entry.name} has ${numel}`,
        entry.officialKey,
      );
    return packBits(entry.bytes.map((v) => (v ? 1 : 0)));
  }
  const expected = Math.ceil(numel / 8);
  if (entry.bytes.byteLength !== expected)
    fail(
      "MASK_MISMATCH",
      `${path}: ${entry.officialKey} holds ${entry.bytes.byteLength} packed bytes, ${entry.name} (${numel} weights) needs ${expected}`,
      entry.officialKey,
    );
  return entry.bytes;
}

function countZeroBits(bits: Uint8Array, numel: number): number {
  let ones = 0;
  for (let i = 0; i < numel; i++) ones += (bits[i >> 3] >> (7 - (i & 7))) & 1;
  return numel - ones;
}

/** Builds the .umask input for a published R-AMT checkpoint (see the module comment for options). */
export async function importMask(
  checkpointPath: string,
  options: ImportMaskOptions,
): Promise<ImportMaskResult> {
  const { entries, epoch } = await readOfficialMasks(checkpointPath);
  let shapes: ReadonlyMap<string, readonly number[]>;
  let baseModel: { name: string | null; fingerprint: string };
  if (options.modelDir) {
    const weightsPath = join(options.modelDir, "model.safetensors");
    const weights = await SafetensorsFile.open(weightsPath);
    try {
      const found = new Map<string, number[]>();
      const values = [];
      for (const entry of entries) {
        const tensor = weights.tensors.get(entry.name);
        if (!tensor)
          fail(
            "MASK_MISMATCH",
            `${weightsPath} has no tensor ${entry.name} (masked by ${entry.officialKey})`,
            entry.name,
          );
        found.set(entry.name, tensor.shape);
        values.push({ name: entry.name, shape: tensor.shape, values: await weights.readFloat32(entry.name) });
      }
      shapes = found;
      const name = weights.metadata.model_name || null;
      baseModel = { name, fingerprint: await fingerprintTensors(values) };
    } finally {
      await weights.close();
    }
  } else {
    if (!options.shapes || !options.baseModel)
      fail("MASK_MISMATCH", "importMask needs a modelDir, or both shapes and baseModel", "modelDir");
    shapes = options.shapes;
    baseModel = options.baseModel;
  }
  const officialKeys = new Map<string, string>();
  let zeros = 0;
  let parameters = 0;
  const tensors = entries.map((entry) => {
    const shape = shapes.get(entry.name);
    if (!shape)
      fail("MASK_MISMATCH", `no shape for ${entry.name} (masked by ${entry.officialKey})`, entry.name);
    if (officialKeys.has(entry.name)) fail("MASK_MISMATCH", `two masks for ${entry.name}`, entry.name);
    officialKeys.set(entry.name, entry.officialKey);
    const numel = shapeNumel(shape, entry.name);
    const bits = packedBitsFor(entry, numel, checkpointPath);
    zeros += countZeroBits(bits, numel);
    parameters += numel;
    return { name: entry.name, shape: [...shape], bits };
  });
  const mask: MaskInput = {
    baseModel,
    tensors,
    recipe: { source: "R-AMT checkpoint", ...(epoch !== null ? { epoch } : {}), ...options.recipe },
    ...(options.metrics ? { metrics: options.metrics } : {}),
  };
  return { mask, officialKeys, zeros, parameters };
}

/** importMask + an atomic write of the .umask file. Returns the result and the file size. */
export async function importMaskToFile(
  checkpointPath: string,
  outPath: string,
  options: ImportMaskOptions,
): Promise<ImportMaskResult & { bytes: number }> {
  const result = await importMask(checkpointPath, options);
  const encoded = encodeMask(result.mask);
  await writeMaskFile(outPath, encoded);
  return { ...result, bytes: encoded.byteLength };
}
