import { describe, expect, it } from "vitest";
import { errorCode, randomBits, rng } from "../test/helpers.js";
import { applyMask } from "./apply.js";
import { packBits, unpackBits } from "./bitset.js";

describe("applyMask", () => {
  const random = rng(41);
  const numel = 77;
  const bits = randomBits(numel, 0.3, random);
  const keep = unpackBits(bits, numel);
  const weights = Float32Array.from({ length: numel }, () => random() * 2 - 1);

  it("zeroes masked-off float32 entries into a new array", () => {
    const out = applyMask(weights, bits);
    expect(out).not.toBe(weights);
    for (let k = 0; k < numel; k++) {
      expect(out[k]).toBe(keep[k] ? weights[k] : 0);
      expect(Object.is(out[k], -0)).toBe(false);
    }
  });

  it("works in place", () => {
    const copy = weights.slice();
    expect(applyMask(copy, bits, { inPlace: true })).toBe(copy);
    for (let k = 0; k < numel; k++) expect(copy[k]).toBe(keep[k] ? weights[k] : 0);
  });

  it("zeroes fp16 and bf16 bit patterns and raw little-endian bytes", () => {
    const halves = Uint16Array.from({ length: numel }, (_, k) => 0x3c00 + k);
    for (const dtype of ["F16", "BF16"] as const) {
      const out = applyMask(halves, bits, { dtype });
      for (let k = 0; k < numel; k++) expect(out[k]).toBe(keep[k] ? halves[k] : 0);
    }
    const raw = new Uint8Array(weights.buffer.slice(0));
    const out = new Float32Array(applyMask(raw, bits, { dtype: "F32" }).buffer);
    for (let k = 0; k < numel; k++) expect(out[k]).toBe(keep[k] ? weights[k] : 0);
    const raw16 = new Uint8Array(halves.buffer.slice(0));
    const out16 = new Uint16Array(applyMask(raw16, bits, { dtype: "BF16", inPlace: true }).buffer);
    for (let k = 0; k < numel; k++) expect(out16[k]).toBe(keep[k] ? halves[k] : 0);
  });

  it("keeps everything with an all-ones mask", () => {
    const ones = packBits(new Uint8Array(numel).fill(1));
    expect([...applyMask(weights, ones)]).toEqual([...weights]);
  });

  it("rejects a mismatched dtype or length", () => {
    expect(errorCode(() => applyMask(new Uint16Array(numel), bits))).toBe("BAD_INPUT");
    expect(errorCode(() => applyMask(weights, bits, { dtype: "F16" }))).toBe("BAD_INPUT");
    expect(errorCode(() => applyMask(new Uint16Array(numel), bits, { dtype: "F32" }))).toBe("BAD_INPUT");
    expect(errorCode(() => applyMask(new Uint8Array(numel * 2 + 1), bits, { dtype: "F16" }))).toBe(
      "BAD_INPUT",
    );
    expect(errorCode(() => applyMask(new Float32Array(numel + 8), bits))).toBe("BAD_INPUT");
  });
});
