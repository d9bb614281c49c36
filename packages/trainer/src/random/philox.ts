/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"), the counter-based
 * generator behind gradient dropout's uniform draws. The CUDA kernels compute the same function
 * (kernels/philox.cuh), so both engines draw identical numbers:
 *
 *   key     = (seed, 0)
 *   counter = (floor(i / 4), step, tensorIndex, 0)   for element i of masked tensor tensorIndex
 *   u       = (word[i % 4] >>> 8) * 2^-24            in [0, 1), exactly representable in float32
 */
const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** One Philox4x32-10 block: 4 words for counter (c0..c3) under key (k0, k1). */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
): void {
  let x0 = c0 >>> 0;
  let x1 = c1 >>> 0;
  let x2 = c2 >>> 0;
  let x3 = c3 >>> 0;
  let key0 = k0 >>> 0;
  let key1 = k1 >>> 0;
  for (let round = 0; round < 10; round++) {
    // 32x32 -> 64-bit products split into hi/lo words, without BigInt.
    const lo0 = Math.imul(M0, x0) >>> 0;
    const hi0 = mulhi(M0, x0);
    const lo1 = Math.imul(M1, x2) >>> 0;
    const hi1 = mulhi(M1, x2);
    const y0 = (hi1 ^ x1 ^ key0) >>> 0;
    const y1 = lo1;
    const y2 = (hi0 ^ x3 ^ key1) >>> 0;
    const y3 = lo0;
    x0 = y0;
    x1 = y1;
    x2 = y2;
    x3 = y3;
    key0 = (key0 + W0) >>> 0;
    key1 = (key1 + W1) >>> 0;
  }
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
}

/** High 32 bits of the unsigned product a*b (a, b < 2^32), exact in doubles via 16-bit halves of b. */
function mulhi(a: number, b: number): number {
  return Math.floor((a * (b >>> 16) + Math.floor((a * (b & 0xffff)) / 65536)) / 65536) >>> 0;
}

/** The gradient-dropout draws of one masked tensor at one step. */
export function philoxUniforms(
  seed: number,
  step: number,
  tensorIndex: number,
  count: number,
  out = new Float32Array(count),
): Float32Array {
  const words = new Uint32Array(4);
  for (let block = 0; block * 4 < count; block++) {
    philox4x32(block, step, tensorIndex, 0, seed, 0, words);
    const base = block * 4;
    for (let lane = 0; lane < 4 && base + lane < count; lane++)
      out[base + lane] = (words[lane] >>> 8) * 2 ** -24;
  }
  return out;
}
