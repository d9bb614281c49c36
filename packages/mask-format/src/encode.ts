/**
 * encodeMask: mask bits + metadata -> the bytes of a .umask file (SPEC.md). Pure: no I/O, runs in
 * browsers. Each tensor is stored in the smaller of its two encodings.
 */
import { bitsetByteLength, checkBitsetLength, clearPadding, countZeros } from "./bitset.js";
import { crc32 } from "./crc32.js";
import { MaskFormatError } from "./errors.js";
import { chooseGolombM, minorityBit, positionsOf, writeGolomb } from "./golomb.js";
import { f32ToF16Bits } from "./half.js";
import {
  FORMAT_VERSION,
  type HeaderJson,
  type HeadRecord,
  headerToJson,
  isFingerprint,
  MAGIC,
  MAX_CLASSES,
  MAX_DIMS,
  MAX_FEATURE_DIM,
  MAX_HEADER_BYTES,
  MAX_NAME_BYTES,
  MAX_TENSOR_NUMEL,
  MAX_TENSORS,
  MAX_TOTAL_NUMEL,
  PREAMBLE_BYTES,
  type TensorEncoding,
  type TensorRecord,
  utf8Length,
} from "./header.js";

export interface MaskTensorInput {
  /** The weight's name in the base model, e.g. "visual.transformer.resblocks.0.attn.in_proj_weight". */
  name: string;
  /** The weight's shape; the mask covers its numel entries in row-major order. */
  shape: number[];
  /** Packed bits, ceil(numel / 8) bytes, MSB first, 1 = keep (see bitset.ts). Padding bits are ignored. */
  bits: Uint8Array;
}

export interface MaskHeadInput {
  classNames: string[];
  /** The prompt template the text features were computed with, e.g. "a photo of a {}.". */
  template: string;
  /** Text features, row-major [classes, dim]; stored as fp16 (|x| must stay below 65504). */
  textFeatures: Float32Array;
}

export interface MaskInput {
  baseModel: { name: string | null; fingerprint: string };
  tensors: MaskTensorInput[];
  /** How the mask was trained (JSON-serialisable; NaN and Infinity become null). */
  recipe?: Record<string, unknown>;
  /** What it scored (JSON-serialisable). */
  metrics?: Record<string, unknown>;
  head?: MaskHeadInput;
}

export interface EncodeOptions {
  /** "auto" (default) stores each tensor in the smaller encoding; the others force one. */
  encoding?: "auto" | TensorEncoding;
}

/** One tensor's payload in the chosen encoding. */
export interface EncodedTensor {
  encoding: TensorEncoding;
  m?: number;
  zeros: number;
  payload: Uint8Array;
}

/**
 * Encodes one tensor's bits. "auto" picks golomb when its stream is strictly shorter than the
 * bitmap, so ties and dense masks stay plain bitmaps.
 */
export function encodeTensorBits(
  bits: Uint8Array,
  numel: number,
  choice: "auto" | TensorEncoding = "auto",
): EncodedTensor {
  const zeros = countZeros(bits, numel);
  const bitmapBytes = bitsetByteLength(numel);
  if (choice !== "bitmap") {
    const minority = minorityBit(numel, zeros);
    const positions = positionsOf(bits, numel, minority, minority === 0 ? zeros : numel - zeros);
    const { m, bitLength } = chooseGolombM(positions, numel);
    if (choice === "golomb" || Math.ceil(bitLength / 8) < bitmapBytes)
      return { encoding: "golomb", m, zeros, payload: writeGolomb(positions, m, bitLength) };
  }
  const payload = bits.slice(0, bitmapBytes);
  clearPadding(payload, numel);
  return { encoding: "bitmap", zeros, payload };
}

/**
 * The bytes of a .umask file holding `input`.
 * @throws MaskFormatError BAD_INPUT when names, shapes, bit lengths, the fingerprint or the head
 *   disagree; LIMIT_EXCEEDED past a cap of SPEC.md.
 */
export function encodeMask(input: MaskInput, options: EncodeOptions = {}): Uint8Array {
  const choice = options.encoding ?? "auto";
  if (choice !== "auto" && choice !== "bitmap" && choice !== "golomb")
    throw new MaskFormatError("BAD_INPUT", `encoding must be auto, bitmap or golomb (got ${String(choice)})`);
  const badInput = (subject: string, why: string) =>
    new MaskFormatError("BAD_INPUT", `${subject}: ${why}`, { subject });
  const limit = (subject: string, why: string) =>
    new MaskFormatError("LIMIT_EXCEEDED", `${subject}: ${why}`, { subject });

  const { baseModel } = input;
  if (baseModel === null || typeof baseModel !== "object") throw badInput("baseModel", "is required");
  if (!isFingerprint(baseModel.fingerprint))
    throw badInput("baseModel.fingerprint", "must be 64 lowercase hex digits (use fingerprintTensors)");
  if (baseModel.name !== null && typeof baseModel.name !== "string")
    throw badInput("baseModel.name", "must be a string or null");
  if (baseModel.name !== null && utf8Length(baseModel.name) > MAX_NAME_BYTES)
    throw limit("baseModel.name", `is longer than ${MAX_NAME_BYTES} bytes`);
  if (!Array.isArray(input.tensors) || input.tensors.length === 0)
    throw badInput("tensors", "must list at least one tensor");
  if (input.tensors.length > MAX_TENSORS) throw limit("tensors", `more than ${MAX_TENSORS} tensors`);

  const names = new Set<string>();
  const records: TensorRecord[] = [];
  const payloads: Uint8Array[] = [];
  let offset = 0;
  let totalNumel = 0;
  for (const tensor of input.tensors) {
    const { name, shape, bits } = tensor;
    if (typeof name !== "string") throw badInput("tensors[].name", "must be a string");
    if (utf8Length(name) > MAX_NAME_BYTES) throw limit(name, `name is longer than ${MAX_NAME_BYTES} bytes`);
    if (names.has(name)) throw badInput(name, "appears twice in tensors");
    names.add(name);
    if (!Array.isArray(shape) || shape.length === 0 || shape.length > MAX_DIMS)
      throw badInput(name, `shape must have 1 to ${MAX_DIMS} dimensions`);
    let numel = 1;
    for (const dim of shape) {
      if (!Number.isSafeInteger(dim) || dim < 1) throw badInput(name, `shape [${shape}] has a bad dimension`);
      numel *= dim;
    }
    if (numel > MAX_TENSOR_NUMEL) throw limit(name, `has ${numel} entries, above ${MAX_TENSOR_NUMEL}`);
    totalNumel += numel;
    if (totalNumel > MAX_TOTAL_NUMEL) throw limit("tensors", `more than ${MAX_TOTAL_NUMEL} entries in total`);
    checkBitsetLength(bits, numel, name);
    const encoded = encodeTensorBits(bits, numel, choice);
    const record: TensorRecord = {
      name,
      shape: [...shape],
      numel,
      zeros: encoded.zeros,
      encoding: encoded.encoding,
      offset,
      length: encoded.payload.length,
      crc32: crc32(encoded.payload),
    };
    if (encoded.m !== undefined) record.m = encoded.m;
    records.push(record);
    payloads.push(encoded.payload);
    offset += encoded.payload.length;
  }

  const header: HeaderJson = {
    baseModel: { name: baseModel.name, fingerprint: baseModel.fingerprint },
    tensors: records,
  };
  for (const key of ["recipe", "metrics"] as const) {
    const value = input[key];
    if (value === undefined) continue;
    if (value === null || typeof value !== "object" || Array.isArray(value))
      throw badInput(key, "must be a plain object");
    try {
      header[key] = JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
    } catch (cause) {
      throw new MaskFormatError("BAD_INPUT", `${key}: is not JSON-serialisable`, { subject: key, cause });
    }
  }
  if (input.head !== undefined) {
    const { head, payload } = encodeHead(input.head, offset);
    header.head = head;
    payloads.push(payload);
    offset += payload.length;
  }

  const headerBytes = new TextEncoder().encode(headerToJson(header));
  if (headerBytes.length > MAX_HEADER_BYTES)
    throw limit("header", `is ${headerBytes.length} bytes, above the cap ${MAX_HEADER_BYTES}`);
  const payloadStart = PREAMBLE_BYTES + headerBytes.length + 4;
  const out = new Uint8Array(payloadStart + offset);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, FORMAT_VERSION, true);
  view.setUint32(12, headerBytes.length, true);
  out.set(headerBytes, PREAMBLE_BYTES);
  view.setUint32(
    PREAMBLE_BYTES + headerBytes.length,
    crc32(out.subarray(0, PREAMBLE_BYTES + headerBytes.length)),
    true,
  );
  let at = payloadStart;
  for (const p of payloads) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function encodeHead(input: MaskHeadInput, offset: number): { head: HeadRecord; payload: Uint8Array } {
  const bad = (subject: string, why: string) =>
    new MaskFormatError("BAD_INPUT", `${subject}: ${why}`, { subject });
  const { classNames, template, textFeatures } = input;
  if (!Array.isArray(classNames) || classNames.length === 0)
    throw bad("head.classNames", "must list at least one class");
  if (classNames.length > MAX_CLASSES)
    throw new MaskFormatError("LIMIT_EXCEEDED", `head.classNames: more than ${MAX_CLASSES} classes`);
  for (const c of classNames)
    if (typeof c !== "string" || utf8Length(c) > MAX_NAME_BYTES)
      throw bad("head.classNames", `each class name must be a string of at most ${MAX_NAME_BYTES} bytes`);
  if (typeof template !== "string") throw bad("head.template", "must be a string");
  if (!(textFeatures instanceof Float32Array)) throw bad("head.textFeatures", "must be a Float32Array");
  const dim = textFeatures.length / classNames.length;
  if (!Number.isInteger(dim) || dim < 1)
    throw bad(
      "head.textFeatures",
      `has ${textFeatures.length} values, not a multiple of ${classNames.length} classes`,
    );
  if (dim > MAX_FEATURE_DIM)
    throw new MaskFormatError("LIMIT_EXCEEDED", `head.textFeatures: dim ${dim} above ${MAX_FEATURE_DIM}`);
  const payload = new Uint8Array(textFeatures.length * 2);
  const view = new DataView(payload.buffer);
  for (let i = 0; i < textFeatures.length; i++) {
    const h = f32ToF16Bits(textFeatures[i]);
    if ((h & 0x7c00) === 0x7c00)
      throw bad("head.textFeatures", `value ${textFeatures[i]} at index ${i} does not fit in fp16`);
    view.setUint16(i * 2, h, true);
  }
  const head: HeadRecord = {
    classNames: [...classNames],
    template,
    dim,
    dtype: "F16",
    offset,
    length: payload.length,
    crc32: crc32(payload),
  };
  return { head, payload };
}
