import { describe, expect, it } from "vitest";
import { errorCode, randomBits, rng } from "../test/helpers.js";
import { allKeptBitset, countZeros } from "./bitset.js";
import {
  chooseGolombM,
  golombBitLength,
  MAX_GOLOMB_M,
  minorityBit,
  positionsOf,
  readGolomb,
  writeGolomb,
} from "./golomb.js";

/** Bit-by-bit reference coder written straight from SPEC.md 5.2, as a string of 0/1. */
function referenceCode(positions: number[], m: number): string {
  const b = m === 1 ? 0 : Math.ceil(Math.log2(m));
  const u = 2 ** b - m;
  let out = "";
  let prev = -1;
  for (const p of positions) {
    const g = p - prev - 1;
    prev = p;
    const q = Math.floor(g / m);
    const r = g % m;
    out += `${"1".repeat(q)}0`;
    if (b > 0)
      out += r < u ? (b > 1 ? r.toString(2).padStart(b - 1, "0") : "") : (r + u).toString(2).padStart(b, "0");
  }
  return out;
}

function bytesOf(stream: string): number[] {
  const padded = stream.padEnd(Math.ceil(stream.length / 8) * 8, "0");
  const out: number[] = [];
  for (let i = 0; i < padded.length; i += 8) out.push(Number.parseInt(padded.slice(i, i + 8), 2));
  return out;
}

describe("golomb", () => {
  it("codes the worked example of SPEC.md", () => {
    const positions = Uint32Array.of(0, 3, 10);
    expect(golombBitLength(positions, 3)).toBe(9);
    expect([...writeGolomb(positions, 3, 9)]).toEqual([0x1e, 0x00]);
    const bits = readGolomb(Uint8Array.of(0x1e, 0x00), 12, 0, 3, 3, "t");
    expect([...bits]).toEqual([0b01101111, 0b11010000]);
  });

  it("matches the bit-by-bit reference for many m and densities, and round-trips", () => {
    const random = rng(11);
    for (const m of [1, 2, 3, 4, 5, 7, 8, 9, 27, 64, 100, 1000, MAX_GOLOMB_M]) {
      for (const pOff of [0, 0.001, 0.03, 0.2, 0.5]) {
        const numel = 1 + Math.floor(random() * 3000);
        const bits = randomBits(numel, pOff, random);
        const zeros = countZeros(bits, numel);
        const positions = positionsOf(bits, numel, 0, zeros);
        const stream = referenceCode([...positions], m);
        expect(golombBitLength(positions, m)).toBe(stream.length);
        const payload = writeGolomb(positions, m, stream.length);
        expect([...payload]).toEqual(bytesOf(stream));
        expect([...readGolomb(payload, numel, 0, zeros, m, "t")]).toEqual([...bits]);
      }
    }
  });

  it("codes the kept entries when most are masked off (minority bit 1)", () => {
    const random = rng(12);
    const bits = randomBits(999, 0.97, random);
    const zeros = countZeros(bits, 999);
    expect(minorityBit(999, zeros)).toBe(1);
    const positions = positionsOf(bits, 999, 1, 999 - zeros);
    const { m, bitLength } = chooseGolombM(positions, 999);
    const payload = writeGolomb(positions, m, bitLength);
    expect([...readGolomb(payload, 999, 1, 999 - zeros, m, "t")]).toEqual([...bits]);
  });

  it("handles long gaps (unary runs longer than the 32-bit window)", () => {
    const numel = 100_000;
    const bits = allKeptBitset(numel);
    for (const k of [5, 90_000, 99_999]) bits[k >> 3] &= ~(0x80 >> (k & 7));
    const positions = positionsOf(bits, numel, 0, 3);
    for (const m of [1, 3, 1000]) {
      const length = golombBitLength(positions, m);
      const payload = writeGolomb(positions, m, length);
      expect([...readGolomb(payload, numel, 0, 3, m, "t")]).toEqual([...bits]);
    }
  });

  it("picks m near the geometric optimum", () => {
    const random = rng(13);
    const numel = 200_000;
    const bits = randomBits(numel, 0.0256, random);
    const zeros = countZeros(bits, numel);
    const positions = positionsOf(bits, numel, 0, zeros);
    const { m, bitLength } = chooseGolombM(positions, numel);
    expect(m).toBeGreaterThanOrEqual(25);
    expect(m).toBeLessThanOrEqual(29);
    const p = zeros / numel;
    const bound = numel * (-p * Math.log2(p) - (1 - p) * Math.log2(1 - p));
    expect(bitLength / bound).toBeLessThan(1.03);
    expect(chooseGolombM(new Uint32Array(0), 10)).toEqual({ m: 1, bitLength: 0 });
  });

  describe("hostile payloads", () => {
    const positions = Uint32Array.of(1, 4, 43);
    const length = golombBitLength(positions, 5);
    const good = writeGolomb(positions, 5, length); // 17 bits: the last byte has padding bits

    it("rejects a stream that ends early", () => {
      expect(errorCode(() => readGolomb(good.subarray(0, good.length - 1), 64, 0, 3, 5, "t"))).toBe(
        "BAD_PAYLOAD",
      );
      expect(errorCode(() => readGolomb(new Uint8Array(0), 64, 0, 1, 5, "t"))).toBe("BAD_PAYLOAD");
      expect(
        errorCode(() => readGolomb(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff), 1e9, 0, 1, 5, "t")),
      ).toBe("BAD_PAYLOAD");
    });

    it("rejects extra bytes, nonzero padding and positions past numel", () => {
      expect(length).toBe(17);
      expect(errorCode(() => readGolomb(Uint8Array.of(...good, 0), 64, 0, 3, 5, "t"))).toBe("BAD_PAYLOAD");
      const padded = good.slice();
      padded[padded.length - 1] |= 1;
      expect(errorCode(() => readGolomb(padded, 64, 0, 3, 5, "t"))).toBe("BAD_PAYLOAD");
      expect(errorCode(() => readGolomb(good, 40, 0, 3, 5, "t"))).toBe("BAD_PAYLOAD");
    });
  });
});

describe("golomb allocation", () => {
  it("rejects a damaged stream for a huge tensor before allocating its bitset", () => {
    const before = process.memoryUsage().arrayBuffers;
    // 2^31 entries would take 256 MiB; the stream (one gap, then junk) is bad.
    expect(errorCode(() => readGolomb(Uint8Array.of(0x00, 0x01), 2 ** 31, 0, 1, 1, "t"))).toBe("BAD_PAYLOAD");
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
  });
});
