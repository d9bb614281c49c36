/**
 * Interop with PyTorch users: a mask as a safetensors file holding one U8 tensor of 0/1 per masked
 * weight (1 = keep), shaped like the weight, so `weight * mask` works after
 * `safetensors.torch.load_file`. Only this tiny subset of safetensors is written and read here,
 * because mask-format has no dependencies (the general reader lives in @unmask/clip).
 *
 * Metadata (all strings): "format": "pt", "umask.base_model" (omitted when unnamed),
 * "umask.fingerprint", "umask.tensor_order" (JSON array of names), "umask.recipe" and
 * "umask.metrics" (JSON) when present. The classifier head is not exported.
 */
import { packBits, unpackBits } from "./bitset.js";
import type { DecodedMask } from "./decode.js";
import type { MaskInput } from "./encode.js";
import { MaskFormatError } from "./errors.js";
import { isFingerprint, MAX_HEADER_BYTES, MAX_TENSOR_NUMEL, MAX_TENSORS } from "./header.js";

/** Bytes the safetensors header (JSON) may take: the .umask header cap. */
export const MAX_SAFETENSORS_HEADER_BYTES = MAX_HEADER_BYTES;

/** The bytes of a safetensors file with the mask's tensors unpacked to U8 0/1. */
export function maskToSafetensors(mask: MaskInput | DecodedMask): Uint8Array {
  const tensors = mask.tensors.map((t) => {
    const bits = typeof t.bits === "function" ? t.bits() : t.bits;
    let numel = 1;
    for (const d of t.shape) numel *= d;
    return { name: t.name, shape: [...t.shape], values: unpackBits(bits, numel) };
  });
  const metadata: Record<string, string> = { format: "pt" };
  if (mask.baseModel.name !== null) metadata["umask.base_model"] = mask.baseModel.name;
  metadata["umask.fingerprint"] = mask.baseModel.fingerprint;
  metadata["umask.tensor_order"] = JSON.stringify(tensors.map((t) => t.name));
  if (mask.recipe !== undefined) metadata["umask.recipe"] = JSON.stringify(mask.recipe);
  if (mask.metrics !== undefined) metadata["umask.metrics"] = JSON.stringify(mask.metrics);

  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: "U8", shape: t.shape, data_offsets: [offset, offset + t.values.length] };
    offset += t.values.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    out.set(t.values, at);
    at += t.values.length;
  }
  return out;
}

export interface FromSafetensorsOptions {
  /** Overrides (or supplies, when the file has none) the base model name and fingerprint. */
  baseModel?: { name: string | null; fingerprint: string };
  /** Names the file in error messages. */
  source?: string;
}

/**
 * Reads a safetensors file of U8 (or BOOL) 0/1 tensors into an encodeMask input. Tensor order is
 * "umask.tensor_order" when present, otherwise the order of the data in the file.
 * @throws MaskFormatError BAD_SAFETENSORS for a malformed file or a value other than 0/1,
 *   BAD_INPUT when no fingerprint is known
 */
export function maskFromSafetensors(bytes: Uint8Array, options: FromSafetensorsOptions = {}): MaskInput {
  const source = options.source ?? "safetensors";
  const bad = (why: string, subject?: string) =>
    new MaskFormatError(
      "BAD_SAFETENSORS",
      `${source}: ${why}`,
      subject === undefined ? undefined : { subject },
    );
  if (bytes.length < 8) throw bad(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const headerLength = view.getUint32(0, true);
  if (view.getUint32(4, true) !== 0 || headerLength > MAX_SAFETENSORS_HEADER_BYTES)
    throw bad(`header length is above the cap ${MAX_SAFETENSORS_HEADER_BYTES}`);
  const dataStart = 8 + headerLength;
  if (dataStart > bytes.length) throw bad(`header needs ${dataStart} bytes, the file has ${bytes.length}`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (cause) {
    throw new MaskFormatError("BAD_SAFETENSORS", `${source}: header is not valid UTF-8 JSON`, { cause });
  }
  if (typeof header !== "object" || header === null || Array.isArray(header))
    throw bad("header is not a JSON object");
  const dataBytes = bytes.length - dataStart;
  const entries = Object.entries(header as Record<string, unknown>).filter(([k]) => k !== "__metadata__");
  if (entries.length === 0) throw bad("holds no tensors");
  if (entries.length > MAX_TENSORS) throw bad(`holds more than ${MAX_TENSORS} tensors`);
  const metadataValue = (header as Record<string, unknown>).__metadata__;
  const metadata: Record<string, string> = {};
  if (metadataValue !== undefined) {
    if (typeof metadataValue !== "object" || metadataValue === null || Array.isArray(metadataValue))
      throw bad("__metadata__ is not an object");
    for (const [k, v] of Object.entries(metadataValue)) {
      if (typeof v !== "string") throw bad(`__metadata__.${k} is not a string`);
      metadata[k] = v;
    }
  }

  const tensors: { name: string; shape: number[]; bits: Uint8Array; begin: number }[] = [];
  for (const [name, info] of entries) {
    if (typeof info !== "object" || info === null) throw bad(`tensor ${name} has no description`, name);
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (dtype !== "U8" && dtype !== "BOOL")
      throw bad(`tensor ${name} is ${String(dtype)}, expected U8 or BOOL`, name);
    if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isSafeInteger(d) && d >= 1))
      throw bad(`tensor ${name} has a bad shape`, name);
    let numel = 1;
    for (const d of shape as number[]) numel *= d;
    if (numel > MAX_TENSOR_NUMEL) throw bad(`tensor ${name} has more than ${MAX_TENSOR_NUMEL} entries`, name);
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[1] < offsets[0] ||
      offsets[1] > dataBytes
    )
      throw bad(`tensor ${name} has data_offsets outside the ${dataBytes} data bytes`, name);
    const [begin, end] = offsets as [number, number];
    if (end - begin !== numel)
      throw bad(`tensor ${name} has ${end - begin} bytes for ${numel} entries`, name);
    const values = bytes.subarray(dataStart + begin, dataStart + end);
    for (let k = 0; k < values.length; k++)
      if (values[k] > 1)
        throw bad(`tensor ${name} holds ${values[k]} at entry ${k}; a mask holds 0 or 1`, name);
    tensors.push({ name, shape: shape as number[], bits: packBits(values), begin });
  }

  let ordered = [...tensors].sort((a, b) => a.begin - b.begin);
  const order = metadata["umask.tensor_order"];
  if (order !== undefined) {
    const byName = new Map(tensors.map((t) => [t.name, t]));
    let names: unknown;
    try {
      names = JSON.parse(order);
    } catch {
      names = undefined;
    }
    if (
      !Array.isArray(names) ||
      names.length !== tensors.length ||
      !names.every((n) => typeof n === "string" && byName.has(n)) ||
      new Set(names).size !== names.length
    )
      throw bad("umask.tensor_order does not list the file's tensors");
    ordered = (names as string[]).map((n) => byName.get(n)!);
  }

  const baseModel = options.baseModel ?? {
    name: metadata["umask.base_model"] ?? null,
    fingerprint: metadata["umask.fingerprint"] ?? "",
  };
  if (!isFingerprint(baseModel.fingerprint))
    throw new MaskFormatError(
      "BAD_INPUT",
      `${source}: no base-model fingerprint in the metadata; pass options.baseModel (see fingerprintTensors)`,
      { subject: "umask.fingerprint" },
    );
  const input: MaskInput = {
    baseModel,
    tensors: ordered.map(({ name, shape, bits }) => ({ name, shape, bits })),
  };
  for (const key of ["recipe", "metrics"] as const) {
    const text = metadata[`umask.${key}`];
    if (text === undefined) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (cause) {
      throw new MaskFormatError("BAD_SAFETENSORS", `${source}: umask.${key} is not JSON`, { cause });
    }
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw bad(`umask.${key} is not a JSON object`);
    input[key] = value as Record<string, unknown>;
  }
  return input;
}
