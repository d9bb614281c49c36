import { describe, expect, it } from "vitest";
import { philox4x32, philoxUniforms } from "./philox.js";

describe("philox4x32-10", () => {
  it("matches the Random123 known-answer vectors", () => {
    const out = new Uint32Array(4);
    philox4x32(0, 0, 0, 0, 0, 0, out);
    expect([...out]).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    philox4x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, out);
    expect([...out]).toEqual([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out);
    expect([...out]).toEqual([0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
  });

  it("gives uniforms in [0, 1) with mean near 1/2", () => {
    const u = philoxUniforms(7, 3, 1, 100_001);
    let sum = 0;
    let outside = 0;
    for (const x of u) {
      if (!(x >= 0 && x < 1)) outside++;
      sum += x;
    }
    expect(outside).toBe(0);
    expect(Math.abs(sum / u.length - 0.5)).toBeLessThan(0.01);
  });
});
