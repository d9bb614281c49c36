/**
 * quick_gelu, CLIP's activation: y = x * sigmoid(1.702 x). Arrays in an Arena run in WebAssembly
 * SIMD with a float32 exp (elementwise-kernel.ts, 1-2 ulp); others in float64.
 * Backward, for `signals` gradient signals stacked signal-major over `count` activations:
 *   dinp[i] = dout[i] * (s + 1.702 x s (1 - s)),  s = sigmoid(1.702 x), x = inp[i mod count]
 * dinp may alias dout.
 */
import { Arena } from "./arena.js";

const ALPHA = 1.702;

export function quickGeluForward(out: Float32Array, inp: Float32Array, count: number): void {
  // SIMD (elementwise-kernel.ts) on the multiple of 4, float64 Math.exp on the rest
  const arena = Arena.common(out, inp);
  const vectorised = arena ? count & ~3 : 0;
  if (arena && vectorised) arena.kernels.quickGeluForward(out.byteOffset, inp.byteOffset, vectorised);
  for (let i = vectorised; i < count; i++) {
    const x = inp[i];
    out[i] = x / (1 + Math.exp(-ALPHA * x));
  }
}

export function quickGeluBackward(
  dinp: Float32Array,
  dout: Float32Array,
  inp: Float32Array,
  count: number,
  signals: number,
): void {
  // one exp per activation, shared by the signals; SIMD on the multiple of 4 as in the forward
  const arena = Arena.common(dinp, dout, inp);
  const vectorised = arena ? count & ~3 : 0;
  if (arena && vectorised) {
    if (vectorised === count) {
      arena.kernels.quickGeluBackward(dinp.byteOffset, dout.byteOffset, inp.byteOffset, count, signals);
      return;
    }
    for (let s = 0; s < signals; s++)
      arena.kernels.quickGeluBackward(
        dinp.byteOffset + s * count * 4,
        dout.byteOffset + s * count * 4,
        inp.byteOffset,
        vectorised,
        1,
      );
  }
  for (let i = vectorised; i < count; i++) {
    const x = inp[i];
    const sig = 1 / (1 + Math.exp(-ALPHA * x));
    const slope = sig + ALPHA * x * sig * (1 - sig);
    for (let s = 0; s < signals; s++) dinp[s * count + i] = dout[s * count + i] * slope;
  }
}
