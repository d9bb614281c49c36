/**
 * applyMask: W' = M * W for one weight tensor held as raw typed-array data. Masked-off entries
 * become +0; kept entries are untouched bit for bit.
 */
import { checkBitsetLength } from "./bitset.js";
import { MaskFormatError } from "./errors.js";

export type WeightDType = "F32" | "F16" | "BF16";

export interface ApplyMaskOptions {
  /**
   * Element type of `weights`. Float32Array implies "F32"; a Uint16Array (fp16 or bf16 bit
   * patterns) or a Uint8Array of raw little-endian bytes must say which.
   */
  dtype?: WeightDType;
  /** Zero entries of `weights` itself instead of a copy (default false). */
  inPlace?: boolean;
}

const ELEMENT_BYTES: Record<WeightDType, number> = { F32: 4, F16: 2, BF16: 2 };

/**
 * Zeroes the masked-off entries of `weights` (row-major, numel entries) and returns the result:
 * `weights` itself with inPlace, otherwise a new array of the same type.
 * @throws MaskFormatError BAD_INPUT when the dtype does not fit the array or the bit count differs
 */
export function applyMask<T extends Float32Array | Uint16Array | Uint8Array>(
  weights: T,
  bits: Uint8Array,
  options: ApplyMaskOptions = {},
): T {
  const dtype = options.dtype ?? (weights instanceof Float32Array ? "F32" : undefined);
  if (dtype === undefined || !(dtype in ELEMENT_BYTES))
    throw new MaskFormatError(
      "BAD_INPUT",
      "applyMask: pass dtype F32, F16 or BF16 for 16-bit or byte arrays",
      {
        subject: "dtype",
      },
    );
  const elementBytes = ELEMENT_BYTES[dtype];
  if (weights instanceof Float32Array && elementBytes !== 4)
    throw new MaskFormatError("BAD_INPUT", `applyMask: a Float32Array holds F32, not ${dtype}`, {
      subject: "dtype",
    });
  if (weights instanceof Uint16Array && elementBytes !== 2)
    throw new MaskFormatError("BAD_INPUT", "applyMask: a Uint16Array holds F16 or BF16, not F32", {
      subject: "dtype",
    });
  const byteWise = weights instanceof Uint8Array;
  if (byteWise && weights.length % elementBytes !== 0)
    throw new MaskFormatError(
      "BAD_INPUT",
      `applyMask: ${weights.length} bytes is not a whole number of ${dtype} values`,
      { subject: "weights" },
    );
  const numel = byteWise ? weights.length / elementBytes : weights.length;
  checkBitsetLength(bits, numel, "applyMask");
  const out = (options.inPlace ? weights : weights.slice()) as T;

  const fullBytes = numel >> 3;
  const zeroEntry = byteWise
    ? (k: number) => out.fill(0, k * elementBytes, (k + 1) * elementBytes)
    : (k: number) => {
        out[k] = 0;
      };
  for (let i = 0; i < fullBytes; i++) {
    const b = bits[i];
    if (b === 0xff) continue;
    let off = ~b & 0xff;
    while (off !== 0) {
      const lead = Math.clz32(off) - 24;
      zeroEntry((i << 3) + lead);
      off ^= 0x80 >> lead;
    }
  }
  for (let k = fullBytes << 3; k < numel; k++) if (((bits[k >> 3] >> (7 - (k & 7))) & 1) === 0) zeroEntry(k);
  return out;
}
