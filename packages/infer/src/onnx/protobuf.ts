/**
 * The few protobuf wire-format pieces needed to read and patch an ONNX ModelProto: varints,
 * length-delimited fields, and a writer that re-frames edited sub-messages.
 *
 * Threat model: the .onnx file comes from a model directory the user points at; it is treated
 * as untrusted. Every length is checked against the bytes remaining before it is used, varints
 * longer than 10 bytes or beyond Number.MAX_SAFE_INTEGER are refused, and group wire types
 * (deprecated, never used by ONNX) are rejected.
 */
import { UnmaskError } from "@unmask/mask-format";

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

/** One field as it sits in the buffer: `raw` spans the whole field (tag included). */
export interface ProtoField {
  fieldNumber: number;
  wireType: number;
  /** For WIRE_VARINT: the value. For the others: unused (0). */
  value: number;
  /** For WIRE_LEN: the payload. For fixed widths: the 4 or 8 bytes. */
  payload: Uint8Array;
  /** The whole field, tag and length prefix included, for copying it unchanged. */
  raw: Uint8Array;
}

function corrupt(source: string, offset: number, message: string): never {
  throw new UnmaskError("ONNX_CORRUPT", `${source}: ${message} at byte ${offset}`, { subject: source });
}

/** Reads a varint at `pos`; returns [value, next position]. */
export function readVarint(bytes: Uint8Array, pos: number, source: string): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= bytes.byteLength) corrupt(source, pos, "varint runs past the end of the message");
    const b = bytes[pos + i];
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) {
      if (!Number.isSafeInteger(value)) corrupt(source, pos, "varint exceeds 2^53");
      return [value, pos + i + 1];
    }
    scale *= 128;
  }
  corrupt(source, pos, "varint longer than 10 bytes");
}

/** Splits one message into its fields (not recursive). */
export function readFields(bytes: Uint8Array, source: string): ProtoField[] {
  const fields: ProtoField[] = [];
  let pos = 0;
  while (pos < bytes.byteLength) {
    const start = pos;
    const [tag, afterTag] = readVarint(bytes, pos, source);
    pos = afterTag;
    const fieldNumber = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (fieldNumber === 0) corrupt(source, start, "field number 0");
    let value = 0;
    let payload: Uint8Array;
    if (wireType === WIRE_VARINT) {
      [value, pos] = readVarint(bytes, pos, source);
      payload = bytes.subarray(afterTag, pos);
    } else if (wireType === WIRE_LEN) {
      const [length, afterLength] = readVarint(bytes, pos, source);
      if (length > bytes.byteLength - afterLength)
        corrupt(
          source,
          start,
          `field ${fieldNumber} claims ${length} bytes, ${bytes.byteLength - afterLength} remain`,
        );
      payload = bytes.subarray(afterLength, afterLength + length);
      pos = afterLength + length;
    } else if (wireType === WIRE_FIXED64 || wireType === WIRE_FIXED32) {
      const width = wireType === WIRE_FIXED64 ? 8 : 4;
      if (width > bytes.byteLength - pos)
        corrupt(source, start, `fixed-width field ${fieldNumber} is cut short`);
      payload = bytes.subarray(pos, pos + width);
      pos += width;
    } else {
      corrupt(source, start, `unsupported wire type ${wireType} for field ${fieldNumber}`);
    }
    fields.push({ fieldNumber, wireType, value, payload, raw: bytes.subarray(start, pos) });
  }
  return fields;
}

const utf8 = new TextDecoder("utf-8");
const utf8Encoder = new TextEncoder();

export function decodeString(payload: Uint8Array): string {
  return utf8.decode(payload);
}

/** Values of a repeated int64/int32 field, packed or not. */
export function readRepeatedVarints(fields: ProtoField[], fieldNumber: number, source: string): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.fieldNumber !== fieldNumber) continue;
    if (f.wireType === WIRE_VARINT) out.push(f.value);
    else if (f.wireType === WIRE_LEN) {
      let pos = 0;
      while (pos < f.payload.byteLength) {
        const [v, next] = readVarint(f.payload, pos, source);
        out.push(v);
        pos = next;
      }
    }
  }
  return out;
}

/** Builds a message from parts; sub-messages are framed with their length when added. */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  private push(chunk: Uint8Array): this {
    this.chunks.push(chunk);
    this.length += chunk.byteLength;
    return this;
  }

  private varintBytes(value: number): Uint8Array {
    if (!Number.isSafeInteger(value) || value < 0)
      throw new UnmaskError("ONNX_CORRUPT", `cannot encode ${value} as an unsigned varint`);
    const out: number[] = [];
    let v = value;
    while (v >= 128) {
      out.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(v);
    return Uint8Array.from(out);
  }

  /** Copies an already-encoded field (tag included). */
  raw(bytes: Uint8Array): this {
    return this.push(bytes);
  }

  varint(fieldNumber: number, value: number): this {
    this.push(this.varintBytes(fieldNumber * 8 + WIRE_VARINT));
    return this.push(this.varintBytes(value));
  }

  bytes(fieldNumber: number, payload: Uint8Array): this {
    this.push(this.varintBytes(fieldNumber * 8 + WIRE_LEN));
    this.push(this.varintBytes(payload.byteLength));
    return this.push(payload);
  }

  string(fieldNumber: number, value: string): this {
    return this.bytes(fieldNumber, utf8Encoder.encode(value));
  }

  message(fieldNumber: number, inner: ProtoWriter): this {
    return this.bytes(fieldNumber, inner.finish());
  }

  float32(fieldNumber: number, value: number): this {
    this.push(this.varintBytes(fieldNumber * 8 + WIRE_FIXED32));
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    return this.push(b);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let pos = 0;
    for (const c of this.chunks) {
      out.set(c, pos);
      pos += c.byteLength;
    }
    return out;
  }
}
