/**
 * Element types as safetensors names them, their sizes, and conversions of raw little-endian bytes
 * to Float32Array. fp16 and bf16 are widened exactly (every fp16/bf16 value is a float32 value).
 */
import { f16BitsToF32, f32ToF16Bits, UnmaskError } from "@unmask/mask-format";

export type DType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL"
  | "U16"
  | "U32"
  | "U64";

export const DTYPE_BYTES: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  U16: 2,
  U32: 4,
  U64: 8,
};

export function isDType(value: unknown): value is DType {
  return typeof value === "string" && Object.hasOwn(DTYPE_BYTES, value);
}

/** Product of a shape, refusing anything that is not a safe non-negative integer. */
export function shapeNumel(shape: readonly number[], subject = "tensor"): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0)
      throw new UnmaskError("BAD_SHAPE", `${subject}: bad dimension ${d} in shape [${shape.join(", ")}]`, {
        subject,
      });
    n *= d;
    if (!Number.isSafeInteger(n))
      throw new UnmaskError("BAD_SHAPE", `${subject}: shape [${shape.join(", ")}] is too large`, { subject });
  }
  return n;
}

const f16Table = (() => {
  // All 65,536 half values: a lookup is faster than bit twiddling per element.
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = f16BitsToF32(h);
  return table;
})();

export function f16ToF32(bits: number): number {
  return f16Table[bits & 0xffff];
}

/**
 * Round-to-nearest-even float32 -> fp16 bits (as numpy and torch do). Every NaN becomes the quiet
 * NaN 0x7e00 with its sign, as torch writes it (mask-format's conversion keeps the payload bits).
 */
export function f32ToF16(value: number): number {
  const half = f32ToF16Bits(value);
  return (half & 0x7c00) === 0x7c00 && (half & 0x3ff) !== 0 ? half & 0xfe00 : half;
}

const scratch = new DataView(new ArrayBuffer(4));
/** Round-to-nearest-even float32 -> bf16 bits. */
export function f32ToBf16(value: number): number {
  scratch.setFloat32(0, value, true);
  const x = scratch.getUint32(0, true);
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Little-endian raw bytes of a floating tensor -> Float32Array (a copy). */
export function toFloat32(bytes: Uint8Array, dtype: DType, subject = "tensor"): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "F32":
      if (bytes.byteOffset % 4 === 0) out.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
      else for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    case "F16":
      for (let i = 0; i < n; i++) out[i] = f16Table[view.getUint16(i * 2, true)];
      return out;
    case "BF16":
      for (let i = 0; i < n; i++) {
        scratch.setUint32(0, view.getUint16(i * 2, true) << 16, true);
        out[i] = scratch.getFloat32(0, true);
      }
      return out;
    case "F64":
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    default:
      throw new UnmaskError("BAD_DTYPE", `${subject}: dtype ${dtype} is not a floating type`, { subject });
  }
}

/** Float32Array -> little-endian bytes in `dtype` (F32, F16 or BF16). */
export function fromFloat32(values: Float32Array, dtype: "F32" | "F16" | "BF16"): Uint8Array {
  if (dtype === "F32")
    return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint16Array(values.length);
  if (dtype === "F16") for (let i = 0; i < values.length; i++) out[i] = f32ToF16(values[i]);
  else {
    // f32ToBf16's rounding on the bits in place, without its DataView round trip per value (the
    // cuda engine converts a ViT-B/16's weights this way); NaNs through f32ToBf16 itself
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < bits.length; i++) {
      const x = bits[i];
      out[i] =
        (x & 0x7f800000) === 0x7f800000 && x & 0x7fffff
          ? f32ToBf16(values[i])
          : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return new Uint8Array(out.buffer);
}
