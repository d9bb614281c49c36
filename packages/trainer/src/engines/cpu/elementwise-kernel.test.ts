import { describe, expect, it } from "vitest";
import { Arena } from "./arena.js";
import { layernormBackward, layernormForward } from "./layernorm.js";
import { matmulForward } from "./matmul.js";
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

describe("SIMD layernorm and bias against the float64 loops (same function, arrays outside an arena)", () => {
  const arena = new Arena();
  const rows = 7;
  const width = 36;
  const wave = (n: number, a: number, b: number) =>
    Float32Array.from({ length: n }, (_, i) => Math.sin(a * i + b) * (1 + (i % 3)));
  const x = wave(rows * width, 0.37, 0.1);
  const w = wave(width, 0.9, 0.3);
  const b = wave(width, 1.3, 0.7);
  const close = (got: Float32Array, want: Float32Array, tolerance: number) => {
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < want.length; i++) {
      worst = Math.max(worst, Math.abs(got[i] - want[i]));
      scale = Math.max(scale, Math.abs(want[i]));
    }
    expect(worst / scale).toBeLessThan(tolerance);
  };

  it("forward (with and without statistics) and backward, accumulating over two signals", () => {
    const want = {
      out: new Float32Array(rows * width),
      mean: new Float32Array(rows),
      rstd: new Float32Array(rows),
    };
    layernormForward(want.out, want.mean, want.rstd, x, w, b, rows, width);
    const got = { out: arena.floats(rows * width), mean: arena.floats(rows), rstd: arena.floats(rows) };
    const [xa, wa, ba] = [arena.copyOf(x), arena.copyOf(w), arena.copyOf(b)];
    layernormForward(got.out, got.mean, got.rstd, xa, wa, ba, rows, width);
    close(got.out, want.out, 1e-6);
    close(got.mean, want.mean, 1e-6);
    close(got.rstd, want.rstd, 1e-6);
    const noStats = arena.floats(rows * width);
    layernormForward(noStats, null, null, xa, wa, ba, rows, width);
    expect(noStats).toEqual(got.out);

    const dout = wave(2 * rows * width, 0.23, 0.5);
    const wantD = wave(2 * rows * width, 0.11, 0.2);
    const gotD = arena.copyOf(wantD);
    layernormBackward(wantD, dout, x, w, want.mean, want.rstd, rows, width, 2, true);
    layernormBackward(gotD, arena.copyOf(dout), xa, wa, got.mean, got.rstd, rows, width, 2, true);
    close(gotD, wantD, 2e-6);
  });

  it("bias rows in matmulForward", () => {
    const inDim = 5;
    const outDim = 12;
    const inp = wave(rows * inDim, 0.5, 0);
    const weight = wave(outDim * inDim, 0.7, 1);
    const want = new Float32Array(rows * outDim);
    matmulForward(want, inp, weight, b.subarray(0, outDim), rows, inDim, outDim);
    const got = arena.floats(rows * outDim);
    matmulForward(
      got,
      arena.copyOf(inp),
      arena.copyOf(weight),
      arena.copyOf(b.subarray(0, outDim)),
      rows,
      inDim,
      outDim,
    );
    close(got, want, 1e-6);
  });
});
