/**
 * The .umask container: fixed preamble, JSON header, caps, and the header's validation against
 * the file size. SPEC.md sections 2-4 describe the same rules in prose; keep them in step.
 *
 * Threat model: a .umask file comes from someone else. Nothing here allocates or loops by a
 * number read from the file before that number is checked against its cap and against the bytes
 * actually present.
 */
import { MaskFormatError } from "./errors.js";
import { MAX_GOLOMB_M } from "./golomb.js";

/** File signature: 0x89 "UMASK" CR LF. The high byte and the CR LF catch 7-bit and text-mode damage. */
export const MAGIC = Uint8Array.of(0x89, 0x55, 0x4d, 0x41, 0x53, 0x4b, 0x0d, 0x0a);
/** The format version this code writes and reads. */
export const FORMAT_VERSION = 1;
/** magic (8) + version (u32) + header length (u32). */
export const PREAMBLE_BYTES = 16;
/** Bytes of the header CRC-32 that follows the JSON. */
export const HEADER_CRC_BYTES = 4;

/** Header JSON cap: 1000 ImageNet class names take ~20 KB, so 16 MiB is generous. */
export const MAX_HEADER_BYTES = 16 * 1024 * 1024;
/** Masked tensors per file: ViT-bigG with every matrix masked has ~200. */
export const MAX_TENSORS = 4096;
/** UTF-8 bytes of a tensor name, a model name or a class name. */
export const MAX_NAME_BYTES = 1024;
/** Dimensions of a masked tensor. */
export const MAX_DIMS = 8;
/** Entries of one tensor: 2^31 keeps positions in uint32 and a decoded bitset at 256 MiB. */
export const MAX_TENSOR_NUMEL = 2 ** 31;
/** Entries over all tensors: decoded bitsets stay within 1 GiB (ViT-bigG fully masked: 1.8e9). */
export const MAX_TOTAL_NUMEL = 2 ** 33;
/** Classes of a classifier head (ImageNet-21k has 21,841). */
export const MAX_CLASSES = 1 << 20;
/** Width of a head's text features (CLIP embed dims are 512-1280). */
export const MAX_FEATURE_DIM = 1 << 16;

export type TensorEncoding = "bitmap" | "golomb";

/** One masked tensor as the header records it. Offsets are relative to the payload start. */
export interface TensorRecord {
  name: string;
  shape: number[];
  numel: number;
  zeros: number;
  encoding: TensorEncoding;
  /** Golomb parameter; present only for encoding "golomb". */
  m?: number;
  offset: number;
  length: number;
  crc32: number;
}

export interface HeadRecord {
  classNames: string[];
  template: string;
  dim: number;
  dtype: "F16";
  offset: number;
  length: number;
  crc32: number;
}

export interface HeaderJson {
  baseModel: { name: string | null; fingerprint: string };
  tensors: TensorRecord[];
  recipe?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  head?: HeadRecord;
}

const FINGERPRINT_PATTERN = /^[0-9a-f]{64}$/;
const utf8 = new TextEncoder();

export function utf8Length(text: string): number {
  return utf8.encode(text).length;
}

/** True for a lowercase 64-hex-digit SHA-256 fingerprint. */
export function isFingerprint(value: unknown): value is string {
  return typeof value === "string" && FINGERPRINT_PATTERN.test(value);
}

/**
 * Checks a parsed header against the schema, the caps and the payload size (bytes after the
 * header CRC). Returns it typed; throws BAD_HEADER, LIMIT_EXCEEDED, UNSUPPORTED_ENCODING,
 * BAD_LAYOUT, TRUNCATED or TRAILING_BYTES.
 */
export function checkHeader(value: unknown, payloadBytes: number, source: string): HeaderJson {
  const bad = (field: string, why: string) =>
    new MaskFormatError("BAD_HEADER", `${source}: header field ${field} ${why}`, { subject: field });
  const limit = (field: string, why: string) =>
    new MaskFormatError("LIMIT_EXCEEDED", `${source}: header field ${field} ${why}`, { subject: field });
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  // `max` is a cap of SPEC.md section 10 (LIMIT_EXCEEDED) unless `range` says it is the field's
  // natural range (BAD_HEADER).
  const int = (v: unknown, field: string, min: number, max: number, range = false): number => {
    if (typeof v !== "number" || !Number.isSafeInteger(v)) throw bad(field, "must be an integer");
    if (v < min) throw bad(field, `must be at least ${min} (is ${v})`);
    if (v > max)
      throw range
        ? bad(field, `must be at most ${max} (is ${v})`)
        : limit(field, `is ${v}, above the cap ${max}`);
    return v;
  };
  const name = (v: unknown, field: string): string => {
    if (typeof v !== "string") throw bad(field, "must be a string");
    if (v.length > MAX_NAME_BYTES || utf8Length(v) > MAX_NAME_BYTES)
      throw limit(field, `is longer than ${MAX_NAME_BYTES} bytes`);
    return v;
  };

  if (!isObject(value)) throw bad("(root)", "must be a JSON object");
  const baseModel = value.baseModel;
  if (!isObject(baseModel)) throw bad("baseModel", "must be an object");
  const modelName = baseModel.name === null ? null : name(baseModel.name, "baseModel.name");
  if (!isFingerprint(baseModel.fingerprint))
    throw bad("baseModel.fingerprint", "must be 64 lowercase hex digits (SHA-256)");

  const tensorsValue = value.tensors;
  if (!Array.isArray(tensorsValue)) throw bad("tensors", "must be an array");
  if (tensorsValue.length === 0) throw bad("tensors", "must list at least one tensor");
  if (tensorsValue.length > MAX_TENSORS)
    throw limit("tensors", `lists ${tensorsValue.length} tensors, above the cap ${MAX_TENSORS}`);

  const names = new Set<string>();
  const tensors: TensorRecord[] = [];
  let totalNumel = 0;
  let expectedOffset = 0;
  for (let t = 0; t < tensorsValue.length; t++) {
    const rec = tensorsValue[t];
    const at = `tensors[${t}]`;
    if (!isObject(rec)) throw bad(at, "must be an object");
    const tensorName = name(rec.name, `${at}.name`);
    if (names.has(tensorName)) throw bad(`${at}.name`, `repeats the tensor name ${tensorName}`);
    names.add(tensorName);
    const where = `${at} (${tensorName})`;
    if (!Array.isArray(rec.shape)) throw bad(`${where}.shape`, "must be an array");
    if (rec.shape.length === 0 || rec.shape.length > MAX_DIMS)
      throw bad(`${where}.shape`, `must have 1 to ${MAX_DIMS} dimensions`);
    let product = 1;
    const shape: number[] = [];
    for (let d = 0; d < rec.shape.length; d++) {
      const dim = int(rec.shape[d], `${where}.shape[${d}]`, 1, MAX_TENSOR_NUMEL);
      product *= dim;
      if (product > MAX_TENSOR_NUMEL)
        throw limit(`${where}.shape`, `has more than ${MAX_TENSOR_NUMEL} entries`);
      shape.push(dim);
    }
    const numel = int(rec.numel, `${where}.numel`, 1, MAX_TENSOR_NUMEL);
    if (numel !== product) throw bad(`${where}.numel`, `is ${numel} but the shape holds ${product}`);
    totalNumel += numel;
    if (totalNumel > MAX_TOTAL_NUMEL)
      throw limit("tensors", `hold more than ${MAX_TOTAL_NUMEL} entries in total`);
    const zeros = int(rec.zeros, `${where}.zeros`, 0, numel, true);
    const encoding = rec.encoding;
    if (typeof encoding !== "string") throw bad(`${where}.encoding`, "must be a string");
    if (encoding !== "bitmap" && encoding !== "golomb")
      throw new MaskFormatError(
        "UNSUPPORTED_ENCODING",
        `${source}: tensor ${tensorName} uses encoding ${JSON.stringify(encoding.slice(0, 64))}, this decoder reads bitmap and golomb`,
        { subject: tensorName },
      );
    const offset = int(rec.offset, `${where}.offset`, 0, Number.MAX_SAFE_INTEGER);
    const length = int(rec.length, `${where}.length`, 0, Number.MAX_SAFE_INTEGER);
    const crc = int(rec.crc32, `${where}.crc32`, 0, 0xffffffff, true);
    const record: TensorRecord = {
      name: tensorName,
      shape,
      numel,
      zeros,
      encoding,
      offset,
      length,
      crc32: crc,
    };
    if (encoding === "golomb") record.m = int(rec.m, `${where}.m`, 1, MAX_GOLOMB_M);
    else if (length !== Math.ceil(numel / 8))
      throw new MaskFormatError(
        "BAD_LAYOUT",
        `${source}: bitmap tensor ${tensorName} has length ${length}, expected ${Math.ceil(numel / 8)} for ${numel} entries`,
        { subject: tensorName },
      );
    if (offset !== expectedOffset)
      throw new MaskFormatError(
        "BAD_LAYOUT",
        `${source}: tensor ${tensorName} starts at payload offset ${offset}, expected ${expectedOffset} (sections are contiguous)`,
        { subject: tensorName },
      );
    expectedOffset = offset + length;
    tensors.push(record);
  }

  const header: HeaderJson = { baseModel: { name: modelName, fingerprint: baseModel.fingerprint }, tensors };
  for (const key of ["recipe", "metrics"] as const) {
    if (value[key] === undefined) continue;
    if (!isObject(value[key])) throw bad(key, "must be an object");
    header[key] = value[key] as Record<string, unknown>;
  }

  if (value.head !== undefined) {
    const head = value.head;
    if (!isObject(head)) throw bad("head", "must be an object");
    if (!Array.isArray(head.classNames)) throw bad("head.classNames", "must be an array");
    if (head.classNames.length === 0) throw bad("head.classNames", "must list at least one class");
    if (head.classNames.length > MAX_CLASSES)
      throw limit("head.classNames", `lists ${head.classNames.length} classes, above the cap ${MAX_CLASSES}`);
    const classNames = head.classNames.map((c, i) => name(c, `head.classNames[${i}]`));
    if (typeof head.template !== "string") throw bad("head.template", "must be a string");
    const dim = int(head.dim, "head.dim", 1, MAX_FEATURE_DIM);
    if (head.dtype !== "F16") throw bad("head.dtype", 'must be "F16"');
    const offset = int(head.offset, "head.offset", 0, Number.MAX_SAFE_INTEGER);
    const length = int(head.length, "head.length", 0, Number.MAX_SAFE_INTEGER);
    const crc = int(head.crc32, "head.crc32", 0, 0xffffffff, true);
    if (length !== classNames.length * dim * 2)
      throw new MaskFormatError(
        "BAD_LAYOUT",
        `${source}: head.length is ${length}, expected ${classNames.length * dim * 2} (classes x dim x 2 bytes)`,
        { subject: "head.length" },
      );
    if (offset !== expectedOffset)
      throw new MaskFormatError(
        "BAD_LAYOUT",
        `${source}: head starts at payload offset ${offset}, expected ${expectedOffset} (sections are contiguous)`,
        { subject: "head.offset" },
      );
    expectedOffset = offset + length;
    header.head = { classNames, template: head.template, dim, dtype: "F16", offset, length, crc32: crc };
  }

  if (expectedOffset > payloadBytes)
    throw new MaskFormatError(
      "TRUNCATED",
      `${source}: the header declares ${expectedOffset} payload bytes, the file holds ${payloadBytes}`,
    );
  if (expectedOffset < payloadBytes)
    throw new MaskFormatError(
      "TRAILING_BYTES",
      `${source}: ${payloadBytes - expectedOffset} bytes follow the last section (payload offset ${expectedOffset})`,
    );
  return header;
}

/** The header object in the reference key order (SPEC.md section 3). */
export function headerToJson(header: HeaderJson): string {
  const ordered: Record<string, unknown> = {
    baseModel: { name: header.baseModel.name, fingerprint: header.baseModel.fingerprint },
    tensors: header.tensors.map((t) => ({
      name: t.name,
      shape: t.shape,
      numel: t.numel,
      zeros: t.zeros,
      encoding: t.encoding,
      ...(t.encoding === "golomb" ? { m: t.m } : {}),
      offset: t.offset,
      length: t.length,
      crc32: t.crc32,
    })),
  };
  if (header.recipe !== undefined) ordered.recipe = header.recipe;
  if (header.metrics !== undefined) ordered.metrics = header.metrics;
  if (header.head !== undefined) {
    const h = header.head;
    ordered.head = {
      classNames: h.classNames,
      template: h.template,
      dim: h.dim,
      dtype: h.dtype,
      offset: h.offset,
      length: h.length,
      crc32: h.crc32,
    };
  }
  return JSON.stringify(ordered);
}
