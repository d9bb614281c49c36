/**
 * Adam on the scores (docs/rmt-method.md 5): betas (0.9, 0.999), eps 1e-8, no weight decay,
 * bias correction at t = step + 1, in PyTorch's arithmetic order:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   S -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Scalars in float64; S, m, v stored as float32.
 */

export interface AdamSettings {
  lr: number;
  /** 0-based step index; the bias correction uses t = step + 1. */
  step: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export function adamUpdate(
  params: Float32Array,
  grads: Float32Array,
  m: Float32Array,
  v: Float32Array,
  count: number,
  settings: AdamSettings,
): void {
  const { lr, beta1, beta2, eps } = settings;
  const t = settings.step + 1;
  const stepSize = lr / (1 - beta1 ** t);
  const sqrtCorrection2 = Math.sqrt(1 - beta2 ** t);
  for (let i = 0; i < count; i++) {
    const g = grads[i];
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] -= (stepSize * mi) / (Math.sqrt(vi) / sqrtCorrection2 + eps);
  }
}
