/**
 * The "golomb" tensor encoding: positions of the minority bit value, stored as Golomb-coded gaps.
 *
 * A mask that switches off a fraction p of independent weights has geometric gaps between its
 * zeros, and a Golomb code with the right m is the optimal prefix code for a geometric source
 * (Gallager and Van Voorhis, 1975): it lands within about 1% of the bound n*H(p). Rice coding
 * (m a power of two) can be 3% off, hence the truncated-binary remainder. SPEC.md section 5 is the
 * normative description; this file is the reference implementation.
 *
 * Bit order: the stream is written most significant bit first: its first bit is bit 7 of byte 0.
 * Each gap g >= 0 is q = floor(g / m) one-bits, a zero-bit, then r = g mod m in truncated binary:
 * with b = ceil(log2 m) and u = 2^b - m, r < u takes b - 1 bits, otherwise r + u takes b bits.
 */
import { bitsetByteLength, clearPadding } from "./bitset.js";
import { MaskFormatError } from "./errors.js";

/** Largest Golomb parameter a file may declare: keeps the remainder within 24 bits. */
export const MAX_GOLOMB_M = 1 << 24;

/** The truncated binary code of remainders mod m: b = ceil(log2 m), u = 2^b - m (0 when m = 1). */
function truncatedBinary(m: number): { b: number; u: number } {
  const b = m <= 1 ? 0 : 32 - Math.clz32(m - 1);
  return { b, u: b === 0 ? 0 : 2 ** b - m };
}

/** Which bit value is stored by position: 0 when zeros <= numel / 2, else 1. */
export function minorityBit(numel: number, zeros: number): 0 | 1 {
  return zeros * 2 <= numel ? 0 : 1;
}

/**
 * Flat indices of the entries equal to `value`, in increasing order. `count` is how many there
 * are (the caller counted them), so the result is allocated once.
 */
export function positionsOf(bits: Uint8Array, numel: number, value: 0 | 1, count: number): Uint32Array {
  const positions = new Uint32Array(count);
  const flip = value === 0 ? 0xff : 0; // turn the wanted value into 1 bits
  const skip = value === 0 ? 0xff : 0; // a byte with no wanted value
  const fullBytes = numel >> 3;
  let c = 0;
  for (let i = 0; i < fullBytes; i++) {
    const byte = bits[i];
    if (byte === skip) continue;
    let x = byte ^ flip;
    while (x !== 0) {
      const lead = Math.clz32(x) - 24;
      positions[c++] = (i << 3) + lead;
      x ^= 0x80 >> lead;
    }
  }
  const rest = numel & 7;
  if (rest !== 0) {
    let x = (bits[fullBytes] ^ flip) & (0xff << (8 - rest)) & 0xff;
    while (x !== 0) {
      const lead = Math.clz32(x) - 24;
      positions[c++] = (fullBytes << 3) + lead;
      x ^= 0x80 >> lead;
    }
  }
  if (c !== count) throw new Error(`positionsOf: counted ${c} entries, expected ${count}`);
  return positions;
}

/** Exact length in bits of the Golomb code of these positions' gaps with parameter m. */
export function golombBitLength(positions: Uint32Array, m: number): number {
  const { b, u } = truncatedBinary(m);
  const short = b - 1;
  // Integer arithmetic throughout (gaps < 2^31, m <= 2^24) so the loop stays in int32.
  let quotients = 0;
  let longRemainders = 0;
  let prev = -1;
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i] | 0;
    const g = p - prev - 1;
    prev = p;
    const q = (g / m) | 0;
    quotients += q;
    if (g - q * m >= u) longRemainders++;
  }
  const count = positions.length;
  return quotients + count + (b === 0 ? 0 : count * short + longRemainders);
}

/**
 * The m the reference encoder stores: the optimum m0 for a geometric source with
 * p = count / numel is ceil(log(2 - p) / -log(1 - p)); among m0 - 1, m0, m0 + 1, round(m0 / 2) and
 * 2 m0 (clamped to [1, MAX_GOLOMB_M]) the one giving the shortest stream wins, ties to the smaller.
 */
export function chooseGolombM(positions: Uint32Array, numel: number): { m: number; bitLength: number } {
  const count = positions.length;
  if (count === 0) return { m: 1, bitLength: 0 };
  const p = count / numel;
  const m0 = p >= 1 ? 1 : Math.max(1, Math.ceil(Math.log(2 - p) / -Math.log1p(-p)));
  const candidates = new Set<number>();
  for (const c of [m0 - 1, m0, m0 + 1, Math.round(m0 / 2), m0 * 2])
    candidates.add(Math.min(MAX_GOLOMB_M, Math.max(1, c)));
  let best = { m: 0, bitLength: Number.POSITIVE_INFINITY };
  for (const m of [...candidates].sort((a, b) => a - b)) {
    const bitLength = golombBitLength(positions, m);
    if (bitLength < best.bitLength) best = { m, bitLength };
  }
  return best;
}

/** Writes the gaps of `positions` with parameter m into exactly ceil(bitLength / 8) bytes. */
export function writeGolomb(positions: Uint32Array, m: number, bitLength: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(bitLength / 8));
  const { b, u } = truncatedBinary(m);
  // acc holds accBits pending bits, right-aligned (only the low accBits matter); accBits < 8
  // between codes, so appending up to 24 bits never overflows 32.
  let acc = 0;
  let accBits = 0;
  let o = 0;
  let prev = -1;
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i] | 0;
    const g = p - prev - 1;
    prev = p;
    let q = (g / m) | 0;
    const r = g - q * m;
    while (q >= 24) {
      acc = (acc << 24) | 0xffffff;
      accBits += 24;
      q -= 24;
      while (accBits >= 8) {
        accBits -= 8;
        out[o++] = acc >>> accBits;
      }
    }
    // q ones then a zero: q + 1 <= 24 bits.
    acc = (acc << (q + 1)) | (((1 << q) - 1) << 1);
    accBits += q + 1;
    while (accBits >= 8) {
      accBits -= 8;
      out[o++] = acc >>> accBits;
    }
    if (b > 0) {
      const width = r < u ? b - 1 : b;
      if (width > 0) {
        acc = (acc << width) | (r < u ? r : r + u);
        accBits += width;
        while (accBits >= 8) {
          accBits -= 8;
          out[o++] = acc >>> accBits;
        }
      }
    }
  }
  if (accBits > 0) out[o++] = acc << (8 - accBits);
  if (o !== out.length) throw new Error(`writeGolomb: wrote ${o} bytes, expected ${out.length}`);
  return out;
}

/**
 * Decodes a golomb payload into a bitset of `numel` entries with `count` entries equal to
 * `minority`. Throws BAD_PAYLOAD when the stream runs out, points past numel, or leaves bytes or
 * nonzero padding bits after the last gap.
 *
 * The stream is walked twice: once to check it, allocating nothing, then to fill the bitset. So a
 * damaged payload is rejected before the ceil(numel / 8) bytes are allocated, and only a valid one
 * expands (up to the caps of SPEC.md).
 */
export function readGolomb(
  payload: Uint8Array,
  numel: number,
  minority: 0 | 1,
  count: number,
  m: number,
  subject: string,
): Uint8Array {
  walkGolomb(payload, numel, minority, count, m, subject, undefined);
  const out = new Uint8Array(bitsetByteLength(numel));
  if (minority === 0) {
    out.fill(0xff);
    clearPadding(out, numel);
  }
  walkGolomb(payload, numel, minority, count, m, subject, out);
  return out;
}

/** Reads `count` gaps; with `out`, writes the minority bit at each position. */
function walkGolomb(
  payload: Uint8Array,
  numel: number,
  minority: 0 | 1,
  count: number,
  m: number,
  subject: string,
  out: Uint8Array | undefined,
): void {
  const fail = (why: string) =>
    new MaskFormatError("BAD_PAYLOAD", `${subject}: golomb payload ${why}`, { subject });
  const len = payload.length;
  const { b, u } = truncatedBinary(m);
  const shortBits = b - 1;
  // acc holds the next n stream bits left-aligned in 32 bits; i is the next byte to load. Bytes
  // past the end load as 0 and are caught by the consumed-bits check after each gap.
  let acc = 0;
  let n = 0;
  let i = 0;
  let prev = -1;
  for (let c = 0; c < count; c++) {
    // Unary quotient: count leading one-bits, refilling as the run crosses the window.
    let q = 0;
    for (;;) {
      while (n <= 24) {
        acc |= (i < len ? payload[i] : 0) << (24 - n);
        i++;
        n += 8;
      }
      const ones = Math.clz32(~acc);
      if (ones < n) {
        q += ones;
        const k = ones + 1;
        acc = k === 32 ? 0 : acc << k;
        n -= k;
        break;
      }
      q += n;
      acc = 0;
      n = 0;
      if (q > numel || i > len) throw fail(`runs out of bits in gap ${c}`);
    }
    // Truncated-binary remainder.
    let r = 0;
    if (b > 0) {
      while (n <= 24) {
        acc |= (i < len ? payload[i] : 0) << (24 - n);
        i++;
        n += 8;
      }
      if (shortBits > 0) {
        r = acc >>> (32 - shortBits);
        acc <<= shortBits;
        n -= shortBits;
      }
      if (r >= u) {
        r = ((r << 1) | (acc >>> 31)) - u;
        acc <<= 1;
        n -= 1;
      }
    }
    const position = prev + 1 + q * m + r;
    if (i * 8 - n > len * 8) throw fail(`runs out of bits in gap ${c}`);
    if (position >= numel) throw fail(`points at entry ${position} of ${numel} (gap ${c})`);
    prev = position;
    if (out !== undefined) {
      if (minority === 0) out[position >> 3] &= ~(0x80 >> (position & 7));
      else out[position >> 3] |= 0x80 >> (position & 7);
    }
  }
  const consumedBits = i * 8 - n;
  if (consumedBits > len * 8) throw fail("runs out of bits");
  if (Math.ceil(consumedBits / 8) !== len)
    throw fail(`has ${len - Math.ceil(consumedBits / 8)} bytes after its last gap`);
  const rest = consumedBits & 7;
  if (rest !== 0 && (payload[len - 1] & (0xff >> rest)) !== 0) throw fail("has nonzero padding bits");
}
