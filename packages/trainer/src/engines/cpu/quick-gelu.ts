/**
 * quick_gelu, CLIP's activation: y = x * sigmoid(1.702 x).
 * Backward, for `signals` gradient signals stacked signal-major over `count` activations:
 *   dinp[i] = dout[i] * (s + 1.702 x s (1 - s)),  s = sigmoid(1.702 x), x = inp[i mod count]
 * dinp may alias dout.
 */
const ALPHA = 1.702;

export function quickGeluForward(out: Float32Array, inp: Float32Array, count: number): void {
  for (let i = 0; i < count; i++) {
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
  // one exp per activation, shared by the signals
  for (let i = 0; i < count; i++) {
    const x = inp[i];
    const sig = 1 / (1 + Math.exp(-ALPHA * x));
    const slope = sig + ALPHA * x * sig * (1 - sig);
    for (let s = 0; s < signals; s++) dinp[s * count + i] = dout[s * count + i] * slope;
  }
}
