/**
 * Element types as safetensors names them, their sizes, and conversions of raw little-endian bytes
 * to Float32Array. fp16 and bf16 are widened exactly (every fp16/bf16 value is a float32 value).
 */
import { UnmaskError } from "@unmask/mask-format";

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
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * frac * 2 ** -24;
    else if (exp === 31) table[h] = frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return table;
})();

export function f16ToF32(bits: number): number {
  return f16Table[bits & 0xffff];
}

const scratch = new DataView(new ArrayBuffer(4));
/** Round-to-nearest-even float32 -> fp16 bits (as numpy and torch do). */
export function f32ToF16(value: number): number {
  scratch.setFloat32(0, value, true);
  const x = scratch.getUint32(0, true);
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >>> 10;
  return sign | half;
}

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
  const convert = dtype === "F16" ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < values.length; i++) out[i] = convert(values[i]);
  return new Uint8Array(out.buffer);
}
