/**
 * Gradient dropout regularity (GDR, docs/rmt-method.md 4), element by element:
 *
 *   a = gradient of ce + regulariser, b = gradient of the KL term
 *   P = ( sign(a) (a + b) / (|a| + |b| + eps) + 1 ) / 2          eps = 1e-8, sign(0) = 0
 *   keep = P > u                                                   u ~ U[0, 1) per element and step
 *   g = ((1 - lambda) + lambda * keep) * a
 *
 * P is computed in float64 from the float32 gradients; u comes from Philox (random/philox.ts) or
 * from a test's stored draws.
 */

export const GDR_EPS = 1e-8;

export function gdrKeepProbability(a: number, b: number): number {
  return (Math.sign(a) * (a + b)) / (Math.abs(a) + Math.abs(b) + GDR_EPS) / 2 + 0.5;
}

/** g[i] = ((1 - lambda) + lambda * [P(a_i, b_i) > u_i]) * a_i for i < count; g may alias a. */
export function gradientDropout(
  g: Float32Array,
  a: Float32Array,
  b: Float32Array,
  u: Float32Array,
  lambda: number,
  count: number,
): void {
  const dropped = 1 - lambda;
  for (let i = 0; i < count; i++) {
    const ai = a[i];
    const keep = gdrKeepProbability(ai, b[i]) > u[i];
    g[i] = keep ? ai : dropped * ai;
  }
}
