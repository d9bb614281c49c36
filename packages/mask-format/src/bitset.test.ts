import { describe, expect, it } from "vitest";
import { randomBits, rng } from "../test/helpers.js";
import {
  allKeptBitset,
  bitsetByteLength,
  countOnes,
  countZeros,
  getBit,
  packAboveThreshold,
  packBits,
  paddingIsClear,
  setBit,
  unpackBits,
} from "./bitset.js";

describe("bitset", () => {
  it("packs MSB first like numpy.packbits", () => {
    // numpy.packbits([1,0,1,1,0,0,0,1, 1]) == [0xb1, 0x80]
    expect([...packBits(Uint8Array.of(1, 0, 1, 1, 0, 0, 0, 1, 1))]).toEqual([0xb1, 0x80]);
    // nonzero counts as 1, as in numpy
    expect([...packBits(Uint8Array.of(7, 0, 0, 0, 0, 0, 0, 255))]).toEqual([0x81]);
    expect(bitsetByteLength(0)).toBe(0);
    expect(bitsetByteLength(9)).toBe(2);
  });

  it("round-trips pack and unpack for every length up to 70", () => {
    const random = rng(7);
    for (let numel = 0; numel <= 70; numel++) {
      const values = new Uint8Array(numel);
      for (let k = 0; k < numel; k++) values[k] = random() < 0.3 ? 0 : 1;
      const bits = packBits(values);
      expect(bits.length).toBe(Math.ceil(numel / 8));
      expect(paddingIsClear(bits, numel)).toBe(true);
      expect([...unpackBits(bits, numel)]).toEqual([...values]);
      const zeros = values.filter((v) => v === 0).length;
      expect(countZeros(bits, numel)).toBe(zeros);
      expect(countOnes(bits, numel)).toBe(numel - zeros);
      for (let k = 0; k < numel; k++) expect(getBit(bits, k)).toBe(values[k]);
    }
  });

  it("counts on unaligned views and ignores padding bits", () => {
    const random = rng(8);
    const backing = new Uint8Array(1001);
    const bits = backing.subarray(1, 1001); // byteOffset 1: not word aligned
    bits.set(randomBits(7997, 0.1, random));
    bits[999] |= 0x07; // padding bits set: must not count
    const values = unpackBits(bits, 7997);
    expect(countZeros(bits, 7997)).toBe(values.filter((v) => v === 0).length);
  });

  it("sets and clears single bits", () => {
    const bits = allKeptBitset(10);
    expect([...bits]).toEqual([0xff, 0xc0]);
    setBit(bits, 0, 0);
    setBit(bits, 9, false);
    expect([...bits]).toEqual([0x7f, 0x80]);
    setBit(bits, 9, 1);
    expect(getBit(bits, 9)).toBe(1);
  });

  it("binarises scores like R-AMT (kept when score > threshold)", () => {
    const bits = packAboveThreshold(Float32Array.of(0.01, 0.005, 0.004, Number.NaN, 0.0051), 0.005);
    expect([...unpackBits(bits, 5)]).toEqual([1, 0, 0, 0, 1]);
  });

  it("rejects a bitset of the wrong length", () => {
    expect(() => countZeros(new Uint8Array(2), 17)).toThrow(/3 for 17 entries/);
  });
});
