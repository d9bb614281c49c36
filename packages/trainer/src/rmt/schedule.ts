/**
 * The published learning-rate schedule (docs/rmt-method.md 5): cosine annealing with
 * T_max = epochs and eta_min = 0, stepped once per epoch, no warmup. Epoch e (0-based) runs at
 * lr0 * (1 + cos(pi e / E)) / 2.
 */
export function cosineLearningRate(baseLr: number, epoch: number, epochs: number): number {
  return (baseLr * (1 + Math.cos((Math.PI * epoch) / epochs))) / 2;
}
