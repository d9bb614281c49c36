import { describe, expect, it } from "vitest";
import { Arena } from "./arena.js";
import { quickGeluBackward, quickGeluForward } from "./quick-gelu.js";

/** Values from -100 to 100, dense near 0, including the clamp edges of exp. */
function inputs(count: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => {
    const t = (i / (count - 1)) * 2 - 1;
    return 100 * t * t * t;
  });
}

describe("SIMD elementwise kernels (float32 exp) against float64", () => {
  const arena = new Arena();
  const count = 4003; // not a multiple of 4: the tail takes the float64 path
  const x = arena.copyOf(inputs(count));

  it("quickGeluForward", () => {
    const out = arena.floats(count);
    quickGeluForward(out, x, count);
    let worst = 0;
    for (let i = 0; i < count; i++) {
      const expected = x[i] / (1 + Math.exp(-1.702 * x[i]));
      worst = Math.max(worst, Math.abs(out[i] - expected) / Math.max(1e-30, Math.abs(expected), 1e-6));
    }
    expect(worst).toBeLessThan(1e-6);
  });

  it("quickGeluBackward for two signals, in place", () => {
    const dout = arena.floats(2 * count);
    for (let i = 0; i < 2 * count; i++) dout[i] = i % 7 === 0 ? -1.5 : 0.25 + (i % 5);
    const expected = Float64Array.from(dout);
    // scale: |dout| (s + |1.702 x s (1 - s)|), the size of the terms that cancel near slope = 0
    const scale = Float64Array.from(dout, Math.abs);
    for (let s = 0; s < 2; s++)
      for (let i = 0; i < count; i++) {
        const sig = 1 / (1 + Math.exp(-1.702 * x[i]));
        const term = 1.702 * x[i] * sig * (1 - sig);
        expected[s * count + i] *= sig + term;
        scale[s * count + i] *= sig + Math.abs(term);
      }
    quickGeluBackward(dout, dout, x, count, 2);
    // float32 rounding of the exp's argument 1.702 x alone moves exp by ~|1.702 x| ulp
    let worst = 0;
    for (let i = 0; i < 2 * count; i++) {
      const error = Math.abs(dout[i] - expected[i]) / Math.max(scale[i], 1e-30);
      worst = Math.max(worst, error / (8 + 1.702 * Math.abs(x[i % count])));
    }
    expect(worst).toBeLessThan(1.2e-7);
  });

  it("exp on a softmax row (through expShifted)", () => {
    const p = arena.copyOf(Float32Array.from({ length: 64 }, (_, i) => (i - 40) * 0.75));
    const shiftBits = new Int32Array(new Float32Array([3]).buffer)[0];
    const scaleBits = new Int32Array(new Float32Array([0.5]).buffer)[0];
    const before = Float32Array.from(p);
    arena.kernels.expShifted(p.byteOffset, 64, shiftBits, scaleBits);
    for (let i = 0; i < 64; i++) {
      const expected = Math.exp((before[i] - 3) * 0.5);
      expect(Math.abs(p[i] - expected) / expected).toBeLessThan(3e-7);
    }
  });
});
