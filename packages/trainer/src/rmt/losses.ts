/**
 * The two losses of an R-AMT step on the logits, and their gradients with respect to the student
 * logits (docs/rmt-method.md 3). Engine-agnostic: the cpu engine calls it directly, the CUDA head
 * kernel computes the same formulas.
 *
 *   ce = mean_b [ logsumexp(z_s[b]) - z_s[b, y_b] ]
 *        d ce / d z_s = (softmax(z_s) - onehot(y)) / B
 *   target w = alpha z_t + (1 - alpha) z_s,  p = softmax(w / T),  q = softmax(z_s / T)
 *   kl = T^2 mean_b sum_c -p_c log q_c        (the cross-entropy form the official KLLoss uses)
 *        d kl / d z_s = (T / B) [ (q - p) - (1 - alpha) p (log q - sum_c p_c log q_c) ]
 *   The second term is the gradient through the (undetached) fused target; it vanishes at the
 *   published alpha = 1, where the target is the teacher alone.
 *
 * Sums run in float64; logits and gradients are float32 arrays [B, C], row-major.
 */

export interface LogitLossInput {
  studentLogits: Float32Array;
  teacherLogits: Float32Array;
  labels: Int32Array;
  batch: number;
  classes: number;
  temperature: number;
  fuseAlpha: number;
}

export interface LogitLossOutput {
  lossCe: number;
  lossKl: number;
  /** Samples whose student argmax (first maximum) equals the label. */
  correct: number;
}

/** Writes d ce / d z_s into gradCe and d kl / d z_s into gradKl (both [B, C]); returns the losses. */
export function logitLosses(
  input: LogitLossInput,
  gradCe: Float32Array,
  gradKl: Float32Array,
): LogitLossOutput {
  const {
    studentLogits: zs,
    teacherLogits: zt,
    labels,
    batch,
    classes,
    temperature: T,
    fuseAlpha: alpha,
  } = input;
  const q = new Float64Array(classes);
  const logQ = new Float64Array(classes);
  const p = new Float64Array(classes);
  let ceSum = 0;
  let klSum = 0;
  let correct = 0;
  for (let b = 0; b < batch; b++) {
    const row = b * classes;
    const y = labels[b];
    // cross-entropy on softmax(z_s)
    let best = 0;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) {
      if (zs[row + c] > max) {
        max = zs[row + c];
        best = c;
      }
    }
    if (best === y) correct++;
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(zs[row + c] - max);
    const logSum = Math.log(sum) + max;
    ceSum += logSum - zs[row + y];
    for (let c = 0; c < classes; c++)
      gradCe[row + c] = (Math.exp(zs[row + c] - logSum) - (c === y ? 1 : 0)) / batch;

    // KL towards the fused target, both at temperature T
    softmaxInto(q, logQ, (c) => zs[row + c] / T, classes);
    softmaxInto(p, null, (c) => (alpha * zt[row + c] + (1 - alpha) * zs[row + c]) / T, classes);
    let crossEntropy = 0;
    for (let c = 0; c < classes; c++) crossEntropy -= p[c] * logQ[c];
    klSum += crossEntropy * T * T;
    for (let c = 0; c < classes; c++) {
      const throughTarget = (1 - alpha) * p[c] * (logQ[c] + crossEntropy);
      gradKl[row + c] = ((q[c] - p[c] - throughTarget) * T) / batch;
    }
  }
  return { lossCe: ceSum / batch, lossKl: klSum / batch, correct };
}

function softmaxInto(
  out: Float64Array,
  logOut: Float64Array | null,
  value: (c: number) => number,
  classes: number,
): void {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) max = Math.max(max, value(c));
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(value(c) - max);
  const logSum = Math.log(sum) + max;
  for (let c = 0; c < classes; c++) {
    const log = value(c) - logSum;
    out[c] = Math.exp(log);
    if (logOut) logOut[c] = log;
  }
}
