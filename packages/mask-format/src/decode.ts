/**
 * decodeMask: the bytes of a .umask file -> a mask whose tensors decode on demand.
 *
 * decodeMask itself reads the preamble and the header, checks the header CRC and every declared
 * size against the file, and decodes the (small) classifier head. A tensor's payload is checked
 * (CRC-32) and decoded only when its bits() is first called, so reading one tensor never touches
 * the others.
 */
import { bitsetByteLength, countZeros, paddingIsClear } from "./bitset.js";
import { crc32 } from "./crc32.js";
import type { MaskInput } from "./encode.js";
import { MaskFormatError } from "./errors.js";
import { minorityBit, readGolomb } from "./golomb.js";
import { f16BitsToF32 } from "./half.js";
import {
  checkHeader,
  FORMAT_VERSION,
  HEADER_CRC_BYTES,
  type HeadRecord,
  MAGIC,
  MAX_HEADER_BYTES,
  PREAMBLE_BYTES,
  type TensorEncoding,
  type TensorRecord,
} from "./header.js";

export interface DecodeOptions {
  /** Names the file in error messages (a path or URL); default "mask". */
  source?: string;
}

export interface MaskTensor {
  readonly name: string;
  readonly shape: readonly number[];
  /** Entries (parameters) the mask covers. */
  readonly numel: number;
  /** Masked-off (0) entries, as the header records them; bits() checks the count. */
  readonly zeros: number;
  readonly encoding: TensorEncoding;
  /** Golomb parameter, for encoding "golomb". */
  readonly m?: number;
  /** Where the payload starts in the file, in bytes from the file start. */
  readonly offsetBytes: number;
  /** Payload length in bytes. */
  readonly encodedBytes: number;
  readonly crc32: number;
  /**
   * The packed bits (ceil(numel / 8) bytes, MSB first, 1 = keep). Decoded on the first call, then
   * cached: the same array is returned each time, so treat it as read-only.
   * @throws MaskFormatError CHECKSUM_MISMATCH or BAD_PAYLOAD
   */
  bits(): Uint8Array;
}

export interface MaskHead {
  classNames: string[];
  template: string;
  dim: number;
  /** Row-major [classes, dim], widened from the stored fp16. */
  textFeatures: Float32Array;
}

export interface DecodedMask {
  /** Format version of the file. */
  readonly version: number;
  /** Size of the file in bytes. */
  readonly byteLength: number;
  readonly source: string;
  readonly baseModel: { readonly name: string | null; readonly fingerprint: string };
  readonly recipe?: Record<string, unknown>;
  readonly metrics?: Record<string, unknown>;
  /** Masked tensors in file order. */
  readonly tensors: readonly MaskTensor[];
  readonly tensorNames: readonly string[];
  /** The classifier head, when the file has one. */
  readonly head?: MaskHead;
  /** Bytes of the stored head features (0 without a head). */
  readonly headEncodedBytes: number;
  has(name: string): boolean;
  /** @throws MaskFormatError UNKNOWN_TENSOR */
  tensor(name: string): MaskTensor;
  /** Decodes every tensor and returns an encodeMask input (for re-encoding or export). */
  toInput(): MaskInput;
}

/**
 * Reads a .umask file. Keeps a reference to `bytes` (no copy): do not modify them while the mask
 * is in use.
 * @throws MaskFormatError TRUNCATED, BAD_MAGIC, BAD_VERSION, CHECKSUM_MISMATCH, BAD_HEADER,
 *   LIMIT_EXCEEDED, UNSUPPORTED_ENCODING, BAD_LAYOUT, TRAILING_BYTES
 */
export function decodeMask(bytes: Uint8Array, options: DecodeOptions = {}): DecodedMask {
  const source = options.source ?? "mask";
  if (!(bytes instanceof Uint8Array))
    throw new MaskFormatError("BAD_INPUT", `${source}: decodeMask takes a Uint8Array`);
  const size = bytes.length;
  for (let i = 0; i < MAGIC.length; i++) {
    if (i >= size)
      throw new MaskFormatError("TRUNCATED", `${source}: file ends after ${size} bytes, inside the magic`);
    if (bytes[i] !== MAGIC[i])
      throw new MaskFormatError(
        "BAD_MAGIC",
        `${source}: not a .umask file (byte ${i} is 0x${hex(bytes[i])})`,
      );
  }
  if (size < PREAMBLE_BYTES)
    throw new MaskFormatError("TRUNCATED", `${source}: file ends after ${size} bytes, inside the preamble`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, size);
  const version = view.getUint32(8, true);
  if (version !== FORMAT_VERSION)
    throw new MaskFormatError(
      "BAD_VERSION",
      `${source}: format version ${version}, this decoder reads version ${FORMAT_VERSION}`,
    );
  const headerBytes = view.getUint32(12, true);
  if (headerBytes > MAX_HEADER_BYTES)
    throw new MaskFormatError(
      "LIMIT_EXCEEDED",
      `${source}: header length ${headerBytes} (offset 12) is above the cap ${MAX_HEADER_BYTES}`,
    );
  const headerEnd = PREAMBLE_BYTES + headerBytes;
  const payloadStart = headerEnd + HEADER_CRC_BYTES;
  if (payloadStart > size)
    throw new MaskFormatError(
      "TRUNCATED",
      `${source}: header and its CRC need ${payloadStart} bytes, the file has ${size}`,
    );
  const storedCrc = view.getUint32(headerEnd, true);
  const actualCrc = crc32(bytes.subarray(0, headerEnd));
  if (storedCrc !== actualCrc)
    throw new MaskFormatError(
      "CHECKSUM_MISMATCH",
      `${source}: header CRC-32 at offset ${headerEnd} is 0x${hex(storedCrc, 8)}, the header hashes to 0x${hex(actualCrc, 8)}`,
      { subject: "header" },
    );
  let parsed: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(PREAMBLE_BYTES, headerEnd));
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new MaskFormatError("BAD_HEADER", `${source}: header is not valid UTF-8 JSON`, { cause });
  }
  const header = checkHeader(parsed, size - payloadStart, source);
  const tensors = header.tensors.map((record) => new LazyTensor(bytes, payloadStart, record, source));
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const head = header.head === undefined ? undefined : decodeHead(bytes, payloadStart, header.head, source);

  const mask: DecodedMask = {
    version,
    byteLength: size,
    source,
    baseModel: header.baseModel,
    ...(header.recipe !== undefined ? { recipe: header.recipe } : {}),
    ...(header.metrics !== undefined ? { metrics: header.metrics } : {}),
    tensors,
    tensorNames: tensors.map((t) => t.name),
    ...(head !== undefined ? { head } : {}),
    headEncodedBytes: header.head?.length ?? 0,
    has: (name) => byName.has(name),
    tensor(name) {
      const tensor = byName.get(name);
      if (tensor === undefined)
        throw new MaskFormatError("UNKNOWN_TENSOR", `${source}: no masked tensor named ${name}`, {
          subject: name,
        });
      return tensor;
    },
    toInput() {
      return {
        baseModel: { ...header.baseModel },
        tensors: tensors.map((t) => ({ name: t.name, shape: [...t.shape], bits: t.bits().slice() })),
        ...(header.recipe !== undefined ? { recipe: header.recipe } : {}),
        ...(header.metrics !== undefined ? { metrics: header.metrics } : {}),
        ...(head !== undefined
          ? {
              head: {
                classNames: [...head.classNames],
                template: head.template,
                textFeatures: head.textFeatures.slice(),
              },
            }
          : {}),
      };
    },
  };
  return mask;
}

class LazyTensor implements MaskTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly numel: number;
  readonly zeros: number;
  readonly encoding: TensorEncoding;
  readonly m?: number;
  readonly offsetBytes: number;
  readonly encodedBytes: number;
  readonly crc32: number;
  #file: Uint8Array;
  #source: string;
  #bits: Uint8Array | undefined;

  constructor(file: Uint8Array, payloadStart: number, record: TensorRecord, source: string) {
    this.name = record.name;
    this.shape = Object.freeze([...record.shape]);
    this.numel = record.numel;
    this.zeros = record.zeros;
    this.encoding = record.encoding;
    if (record.m !== undefined) this.m = record.m;
    this.offsetBytes = payloadStart + record.offset;
    this.encodedBytes = record.length;
    this.crc32 = record.crc32;
    this.#file = file;
    this.#source = source;
  }

  bits(): Uint8Array {
    if (this.#bits === undefined) this.#bits = this.#decode();
    return this.#bits;
  }

  #decode(): Uint8Array {
    const subject = `${this.#source}: tensor ${this.name}`;
    const payload = this.#file.subarray(this.offsetBytes, this.offsetBytes + this.encodedBytes);
    const actual = crc32(payload);
    if (actual !== this.crc32)
      throw new MaskFormatError(
        "CHECKSUM_MISMATCH",
        `${subject}: payload at offset ${this.offsetBytes} hashes to CRC-32 0x${hex(actual, 8)}, the header says 0x${hex(this.crc32, 8)}`,
        { subject: this.name },
      );
    const { numel, zeros } = this;
    if (this.encoding === "golomb") {
      const minority = minorityBit(numel, zeros);
      return readGolomb(payload, numel, minority, minority === 0 ? zeros : numel - zeros, this.m!, subject);
    }
    const bits = payload.slice(0, bitsetByteLength(numel));
    if (!paddingIsClear(bits, numel))
      throw new MaskFormatError("BAD_PAYLOAD", `${subject}: bitmap padding bits are not zero`, {
        subject: this.name,
      });
    const counted = countZeros(bits, numel);
    if (counted !== zeros)
      throw new MaskFormatError(
        "BAD_PAYLOAD",
        `${subject}: bitmap holds ${counted} zeros, the header says ${zeros}`,
        { subject: this.name },
      );
    return bits;
  }
}

function decodeHead(file: Uint8Array, payloadStart: number, record: HeadRecord, source: string): MaskHead {
  const start = payloadStart + record.offset;
  const payload = file.subarray(start, start + record.length);
  const actual = crc32(payload);
  if (actual !== record.crc32)
    throw new MaskFormatError(
      "CHECKSUM_MISMATCH",
      `${source}: head features at offset ${start} hash to CRC-32 0x${hex(actual, 8)}, the header says 0x${hex(record.crc32, 8)}`,
      { subject: "head" },
    );
  const count = record.length / 2;
  const textFeatures = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const h = payload[2 * i] | (payload[2 * i + 1] << 8);
    if ((h & 0x7c00) === 0x7c00)
      throw new MaskFormatError("BAD_PAYLOAD", `${source}: head feature ${i} is not finite`, {
        subject: "head",
      });
    textFeatures[i] = f16BitsToF32(h);
  }
  return { classNames: record.classNames, template: record.template, dim: record.dim, textFeatures };
}

function hex(value: number, digits = 2): string {
  return value.toString(16).padStart(digits, "0");
}
