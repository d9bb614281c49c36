/**
 * The host-side random stream of a training run: few-shot sampling, the per-epoch shuffle, crop
 * boxes and flips. (Gradient dropout draws are separate: Philox on the engine, random/philox.ts.)
 *
 * Generator: xoshiro128** 1.1 (Blackman and Vigna), 128 bits of state in four uint32 words, fast
 * with 32-bit integer arithmetic in JS, and trivially serialisable for checkpoints (`getState`).
 * The state is seeded from (seed, stream name) through SplitMix32 so that each use gets an
 * independent stream: `new SeededRandom(1, "few-shot")` and `new SeededRandom(1, "train")`.
 *
 * The draws are our own: a run is reproducible by this implementation (and by anyone who follows
 * this file), not by Python's `random`. To reproduce a run sampled elsewhere, pass its file list.
 */
import { UnmaskError } from "@unmask/clip";

const TWO_POW_32 = 2 ** 32;
/** 2^53, the number of distinct doubles in [0, 1) that `nextFloat` can return. */
const TWO_POW_53 = 2 ** 53;

/** FNV-1a over the UTF-16 code units of a stream name, so different names give different seeds. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export type RandomState = [number, number, number, number];

export class SeededRandom {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** `seed` is any safe integer; `stream` names an independent sequence for the same seed. */
  constructor(seed: number, stream = "") {
    if (!Number.isSafeInteger(seed))
      throw new UnmaskError("BAD_OPTION", `seed ${seed} must be a safe integer`, { subject: "seed" });
    // SplitMix32 over (low word, high word, stream hash) fills the four state words; it never
    // yields an all-zero state for xoshiro in practice, and we check anyway.
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / TWO_POW_32) >>> 0, 0x9e3779b9) ^ hashName(stream);
    const next = () => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.setState([next(), next(), next(), next()]);
  }

  static fromState(state: readonly number[]): SeededRandom {
    const rng = new SeededRandom(0);
    rng.setState(state);
    return rng;
  }

  getState(): RandomState {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  setState(state: readonly number[]): void {
    if (
      state.length !== 4 ||
      !state.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_POW_32) ||
      state.every((w) => w === 0)
    )
      throw new UnmaskError("BAD_RANDOM_STATE", `random state must be four uint32 words, not all zero`, {
        subject: "rng",
      });
    [this.s0, this.s1, this.s2, this.s3] = state.map((w) => w | 0);
  }

  /** Next uint32 (xoshiro128**). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits (two draws). */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / TWO_POW_53;
  }

  /** Uniform double in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.nextFloat();
  }

  /** Uniform integer in [0, n), unbiased (rejection of the top partial range), 1 <= n <= 2^32. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32)
      throw new UnmaskError("BAD_OPTION", `nextInt bound ${n} must be an integer in [1, 2^32]`);
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Fisher-Yates shuffle in place (the last element first, as Python's random.shuffle walks). */
  shuffle<T>(values: { length: number; [i: number]: T }): void {
    for (let i = values.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = values[i];
      values[i] = values[j];
      values[j] = tmp;
    }
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    this.shuffle(out);
    return out;
  }
}
