/**
 * update: everything after the backward for one masked tensor, element by element
 * (docs/cuda-engine.md 1, step 7):
 *
 *   a = dW'_ce * W + regScale * S      straight-through (dS = dW' * W) plus the regulariser
 *   b = dW'_kl * W
 *   g = gradient dropout of a by b with draws u (rmt/gradient-dropout.ts)
 *   Adam on S with g (rmt/adam.ts)
 *   W' = [S > threshold] * W           next step's student weight
 *
 * dW [2, count]: the two signals' weight gradients; regScale = regWeight / ||S|| (rmt/regularizer.ts).
 * `work` holds a and b ([2, count] floats, reused across steps); `debug` receives a, b and g when
 * given.
 */
import type { RmtHyper } from "../../engine.js";
import { adamUpdate } from "../../rmt/adam.js";
import { gradientDropout } from "../../rmt/gradient-dropout.js";

export interface MaskedUpdateDebug {
  ce: Float32Array;
  kl: Float32Array;
  gdr: Float32Array;
}

export function maskedUpdate(
  scores: Float32Array,
  adamM: Float32Array,
  adamV: Float32Array,
  maskedWeight: Float32Array,
  weight: Float32Array,
  dW: Float32Array,
  uniforms: Float32Array,
  count: number,
  regScale: number,
  lr: number,
  step: number,
  hyper: RmtHyper,
  work: Float32Array,
  debug?: MaskedUpdateDebug,
): void {
  const a = debug?.ce ?? work.subarray(0, count);
  const b = debug?.kl ?? work.subarray(count, 2 * count);
  const g = debug?.gdr ?? a;
  for (let i = 0; i < count; i++) {
    a[i] = dW[i] * weight[i] + regScale * scores[i];
    b[i] = dW[count + i] * weight[i];
  }
  gradientDropout(g, a, b, uniforms, hyper.gdrLambda, count);
  adamUpdate(scores, g, adamM, adamV, count, {
    lr,
    step,
    beta1: hyper.adamBeta1,
    beta2: hyper.adamBeta2,
    eps: hyper.adamEps,
  });
  applyMask(maskedWeight, weight, scores, count, hyper.threshold);
}

/** W' = [S > threshold] * W. */
export function applyMask(
  maskedWeight: Float32Array,
  weight: Float32Array,
  scores: Float32Array,
  count: number,
  threshold: number,
): void {
  for (let i = 0; i < count; i++) maskedWeight[i] = scores[i] > threshold ? weight[i] : 0;
}
