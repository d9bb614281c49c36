/**
 * Packed mask bits, the in-memory form of a mask everywhere in unmask.
 *
 * Flat row-major index k lives in byte k >> 3 at bit 7 - (k & 7): most significant bit first, as
 * numpy.packbits and the official R-AMT checkpoints store it. 1 keeps the weight, 0 masks it off.
 * A bitset for `numel` entries is exactly ceil(numel / 8) bytes; the padding bits of the last byte
 * are 0.
 */
import { MaskFormatError } from "./errors.js";

/** Bytes of a packed bitset holding `numel` bits. */
export function bitsetByteLength(numel: number): number {
  return Math.ceil(numel / 8);
}

/** A bitset with every one of `numel` entries kept (1), padding bits 0. */
export function allKeptBitset(numel: number): Uint8Array {
  const bits = new Uint8Array(bitsetByteLength(numel));
  bits.fill(0xff);
  clearPadding(bits, numel);
  return bits;
}

/** Entry k: 1 (kept) or 0 (masked off). */
export function getBit(bits: Uint8Array, k: number): 0 | 1 {
  return ((bits[k >> 3] >> (7 - (k & 7))) & 1) as 0 | 1;
}

/** Sets entry k to `value` (1 keeps, 0 masks off). */
export function setBit(bits: Uint8Array, k: number, value: 0 | 1 | boolean): void {
  const bit = 0x80 >> (k & 7);
  if (value) bits[k >> 3] |= bit;
  else bits[k >> 3] &= ~bit;
}

/** Number of ones in each byte value, for counting. */
const POPCOUNT8 = (() => {
  const table = new Uint8Array(256);
  for (let i = 1; i < 256; i++) table[i] = (i & 1) + table[i >> 1];
  return table;
})();

/** Number of 1 bits among the first `numel` entries (padding bits are ignored). */
export function countOnes(bits: Uint8Array, numel: number): number {
  checkBitsetLength(bits, numel, "bits");
  const fullBytes = numel >> 3;
  let ones = 0;
  // Whole 32-bit words first (SWAR popcount), then the leftover bytes.
  const aligned = bits.byteOffset % 4 === 0;
  let i = 0;
  if (aligned) {
    const words = new Uint32Array(bits.buffer, bits.byteOffset, fullBytes >> 2);
    for (let w = 0; w < words.length; w++) {
      let v = words[w];
      v -= (v >>> 1) & 0x55555555;
      v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
      ones += (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
    }
    i = words.length << 2;
  }
  for (; i < fullBytes; i++) ones += POPCOUNT8[bits[i]];
  const rest = numel & 7;
  if (rest !== 0) ones += POPCOUNT8[bits[fullBytes] & (0xff << (8 - rest)) & 0xff];
  return ones;
}

/** Number of masked-off (0) entries among the first `numel`. */
export function countZeros(bits: Uint8Array, numel: number): number {
  return numel - countOnes(bits, numel);
}

/**
 * Packs one byte per entry (0 = masked off, anything else = kept, as numpy.packbits treats
 * nonzero) into a bitset.
 */
export function packBits(values: Uint8Array): Uint8Array {
  const numel = values.length;
  const bits = new Uint8Array(bitsetByteLength(numel));
  const fullBytes = numel >> 3;
  for (let i = 0; i < fullBytes; i++) {
    const o = i << 3;
    bits[i] =
      ((values[o] !== 0 ? 1 : 0) << 7) |
      ((values[o + 1] !== 0 ? 1 : 0) << 6) |
      ((values[o + 2] !== 0 ? 1 : 0) << 5) |
      ((values[o + 3] !== 0 ? 1 : 0) << 4) |
      ((values[o + 4] !== 0 ? 1 : 0) << 3) |
      ((values[o + 5] !== 0 ? 1 : 0) << 2) |
      ((values[o + 6] !== 0 ? 1 : 0) << 1) |
      (values[o + 7] !== 0 ? 1 : 0);
  }
  for (let k = fullBytes << 3; k < numel; k++) if (values[k] !== 0) bits[k >> 3] |= 0x80 >> (k & 7);
  return bits;
}

/**
 * Packs a real-valued score tensor the way R-AMT binarises it: entry k is kept (1) when
 * scores[k] > threshold, masked off (0) otherwise (NaN masks off).
 */
export function packAboveThreshold(scores: ArrayLike<number>, threshold: number): Uint8Array {
  const numel = scores.length;
  const bits = new Uint8Array(bitsetByteLength(numel));
  for (let k = 0; k < numel; k++) if (scores[k] > threshold) bits[k >> 3] |= 0x80 >> (k & 7);
  return bits;
}

/** Expands the first `numel` entries of a bitset to one byte each (0 or 1). */
export function unpackBits(bits: Uint8Array, numel: number): Uint8Array {
  checkBitsetLength(bits, numel, "bits");
  const values = new Uint8Array(numel);
  const fullBytes = numel >> 3;
  for (let i = 0; i < fullBytes; i++) {
    const b = bits[i];
    const o = i << 3;
    if (b === 0xff) {
      values.fill(1, o, o + 8);
      continue;
    }
    if (b === 0) continue;
    values[o] = b >> 7;
    values[o + 1] = (b >> 6) & 1;
    values[o + 2] = (b >> 5) & 1;
    values[o + 3] = (b >> 4) & 1;
    values[o + 4] = (b >> 3) & 1;
    values[o + 5] = (b >> 2) & 1;
    values[o + 6] = (b >> 1) & 1;
    values[o + 7] = b & 1;
  }
  for (let k = fullBytes << 3; k < numel; k++) values[k] = (bits[k >> 3] >> (7 - (k & 7))) & 1;
  return values;
}

/** Sets the padding bits after entry numel - 1 to 0. */
export function clearPadding(bits: Uint8Array, numel: number): void {
  const rest = numel & 7;
  if (rest !== 0) bits[numel >> 3] &= (0xff << (8 - rest)) & 0xff;
}

/** True when the padding bits after entry numel - 1 are all 0. */
export function paddingIsClear(bits: Uint8Array, numel: number): boolean {
  const rest = numel & 7;
  return rest === 0 || (bits[numel >> 3] & (0xff >> rest)) === 0;
}

/** Throws BAD_INPUT unless `bits` is exactly ceil(numel / 8) bytes. */
export function checkBitsetLength(bits: Uint8Array, numel: number, subject: string): void {
  if (!(bits instanceof Uint8Array))
    throw new MaskFormatError("BAD_INPUT", `${subject}: mask bits must be a Uint8Array`, { subject });
  const expected = bitsetByteLength(numel);
  if (bits.length !== expected)
    throw new MaskFormatError(
      "BAD_INPUT",
      `${subject}: mask bits are ${bits.length} bytes, expected ${expected} for ${numel} entries`,
      { subject },
    );
}
