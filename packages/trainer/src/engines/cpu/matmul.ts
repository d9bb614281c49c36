/**
 * matmul: the linear layers of the image tower (nn.Linear: weight [outDim, inDim], optional bias).
 *
 * matmulForward:  out [rows, outDim] = inp [rows, inDim] @ weight^T + bias
 * matmulBackward, for `signals` gradient signals stacked signal-major (docs/cuda-engine.md 2):
 *   dinp [S * rows, inDim]      = dout [S * rows, outDim] @ weight     (one GEMM over all signals;
 *                                  null to skip; `accumulate` adds into dinp)
 *   dweight [S, outDim, inDim]  = dout_s^T @ inp for each signal s      (null to skip: frozen)
 * inp is the saved forward input, shared by every signal (stride 0 across signals).
 */
import { Arena } from "./arena.js";
import { gemm } from "./gemm.js";

export function matmulForward(
  out: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  bias: Float32Array | null,
  rows: number,
  inDim: number,
  outDim: number,
): void {
  gemm(false, true, rows, outDim, inDim, inp, inDim, weight, inDim, out, outDim, false);
  const arena = bias && outDim % 4 === 0 ? Arena.common(out, bias) : undefined;
  if (arena && bias) arena.kernels.addRows(out.byteOffset, outDim * 4, bias.byteOffset, rows, outDim);
  else if (bias) {
    for (let r = 0; r < rows; r++) {
      const o = r * outDim;
      for (let j = 0; j < outDim; j++) out[o + j] += bias[j];
    }
  }
}

export function matmulBackward(
  dinp: Float32Array | null,
  dweight: Float32Array | null,
  dout: Float32Array,
  inp: Float32Array,
  weight: Float32Array,
  rows: number,
  inDim: number,
  outDim: number,
  signals: number,
  accumulate = false,
): void {
  if (dinp)
    gemm(false, false, signals * rows, inDim, outDim, dout, outDim, weight, inDim, dinp, inDim, accumulate);
  if (dweight) {
    for (let s = 0; s < signals; s++) {
      const ds = dout.subarray(s * rows * outDim, (s + 1) * rows * outDim);
      const dw = dweight.subarray(s * outDim * inDim, (s + 1) * outDim * inDim);
      gemm(true, false, outDim, inDim, rows, ds, outDim, inp, inDim, dw, inDim, false);
    }
  }
}
