/**
 * The mask regulariser: regWeight * sum over masked tensors of ||S_t||_2, the plain (not squared)
 * L2 norm of each score tensor (docs/rmt-method.md 3, code/loss/reg_loss.py). Its gradient,
 * regWeight * S_t / ||S_t||, needs no backward pass: the update adds it to the CE gradient.
 */

/** ||values||_2, summed in float64. */
export function l2Norm(values: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return Math.sqrt(sum);
}

/** regWeight * sum_t ||S_t||_2. */
export function regularizerLoss(scores: Iterable<Float32Array>, regWeight: number): number {
  let total = 0;
  for (const s of scores) total += l2Norm(s);
  return regWeight * total;
}

/**
 * The factor f with d(reg)/dS = f * S for one tensor: regWeight / ||S|| (0 for an all-zero
 * tensor, where the norm has no gradient; PyTorch gives NaN there, which would poison Adam).
 */
export function regularizerGradientScale(norm: number, regWeight: number): number {
  return norm > 0 ? regWeight / norm : 0;
}
