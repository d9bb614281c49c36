import { describe, expect, it } from "vitest";
import { f16BitsToF32, f32ToF16Bits } from "./half.js";

describe("half", () => {
  it("round-trips every finite binary16 value exactly", () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      const back = f32ToF16Bits(f16BitsToF32(h));
      expect(back === h || (h === 0x8000 && back === 0x8000)).toBe(true);
    }
  });

  it("rounds to nearest, ties to even, and overflows to infinity", () => {
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie between 1 and 1+2^-10: even is 1
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: even is 1+2^-9
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds up past the largest finite value
    expect(f32ToF16Bits(-1e9)).toBe(0xfc00);
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie to even: zero
    expect(f32ToF16Bits(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(Number.isNaN(f16BitsToF32(0x7e00))).toBe(true);
  });
});
