/**
 * layernorm over the last axis (eps 1e-5, biased variance, as nn.LayerNorm). Arrays in an Arena
 * with a width divisible by 4 run in WebAssembly SIMD with float32 statistics
 * (elementwise-kernel.ts); others in float64.
 *
 * layernormForward: out [rows, width] = (inp - mean) * rstd * weight + bias; mean and rstd [rows]
 *   are kept for the backward (null for a forward that keeps nothing).
 * layernormBackward, for `signals` gradient rows per activation row (signal-major: gradient row r
 *   reads activation row r mod rows):
 *   xhat = (x - mean) rstd, g = dout * weight
 *   dinp (+)= rstd * (g - mean(g) - xhat * mean(g * xhat))
 *   `accumulate` adds into dinp: the residual stream already holds its own gradient there.
 *   dinp may alias dout only when accumulate is false.
 */
import { Arena } from "./arena.js";

export const LAYERNORM_EPS = 1e-5;
const EPS_BITS = new Int32Array(new Float32Array([LAYERNORM_EPS]).buffer)[0];

export function layernormForward(
  out: Float32Array,
  mean: Float32Array | null,
  rstd: Float32Array | null,
  inp: Float32Array,
  weight: Float32Array,
  bias: Float32Array,
  rows: number,
  width: number,
): void {
  const arena = width % 4 === 0 ? Arena.common(out, mean, rstd, inp, weight, bias) : undefined;
  if (arena) {
    arena.kernels.layernormForward(
      out.byteOffset,
      mean ? mean.byteOffset : 0,
      rstd ? rstd.byteOffset : 0,
      inp.byteOffset,
      weight.byteOffset,
      bias.byteOffset,
      rows,
      width,
      EPS_BITS,
    );
    return;
  }
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    let sum = 0;
    for (let i = 0; i < width; i++) sum += inp[o + i];
    const m = sum / width;
    let varSum = 0;
    for (let i = 0; i < width; i++) {
      const d = inp[o + i] - m;
      varSum += d * d;
    }
    const s = 1 / Math.sqrt(varSum / width + LAYERNORM_EPS);
    for (let i = 0; i < width; i++) out[o + i] = (inp[o + i] - m) * s * weight[i] + bias[i];
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = s;
  }
}

export function layernormBackward(
  dinp: Float32Array,
  dout: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  rows: number,
  width: number,
  signals: number,
  accumulate: boolean,
): void {
  const arena = width % 4 === 0 ? Arena.common(dinp, dout, inp, weight, mean, rstd) : undefined;
  if (arena) {
    arena.kernels.layernormBackward(
      dinp.byteOffset,
      dout.byteOffset,
      inp.byteOffset,
      weight.byteOffset,
      mean.byteOffset,
      rstd.byteOffset,
      rows,
      width,
      signals * rows,
      accumulate ? 1 : 0,
    );
    return;
  }
  for (let gr = 0; gr < signals * rows; gr++) {
    const r = gr % rows;
    const x = r * width;
    const g = gr * width;
    const m = mean[r];
    const s = rstd[r];
    let meanG = 0;
    let meanGx = 0;
    for (let i = 0; i < width; i++) {
      const gi = dout[g + i] * weight[i];
      meanG += gi;
      meanGx += gi * (inp[x + i] - m) * s;
    }
    meanG /= width;
    meanGx /= width;
    for (let i = 0; i < width; i++) {
      const xhat = (inp[x + i] - m) * s;
      const d = s * (dout[g + i] * weight[i] - meanG - xhat * meanGx);
      dinp[g + i] = accumulate ? dinp[g + i] + d : d;
    }
  }
}
