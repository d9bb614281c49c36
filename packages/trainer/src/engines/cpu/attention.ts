/**
 * attention: multi-head self-attention on packed q, k, v (nn.MultiheadAttention's in_proj layout:
 * qkv [B * N, 3D], q in columns 0..D, k in D..2D, v in 2D..3D; head h uses columns h*dh..(h+1)*dh
 * of each, dh = D / heads).
 *
 * attentionForward: per image b and head h
 *   P[b, h] = softmax(q k^T / sqrt(dh))  (row i sees keys j <= i when causal: the text tower)
 *   out[b, :, h] = P[b, h] v               out [B * N, D]; probs [B, heads, N, N] kept
 * attentionBackward, for `signals` gradient signals (signal-major rows, activations shared):
 *   dP = dO v^T;  dv = P^T dO;  dS = P * (dP - rowsum(dP * P)) / sqrt(dh);  dq = dS k;  dk = dS^T q
 *   dqkv [S * B * N, 3D]; scratch holds one N x N dP at a time.
 * `queries` Q < N takes the first Q rows of each image as the only queries (1: the image tower's
 * last block, where the head reads the class token alone): out [B * Q, D], probs [B, heads, Q, N],
 * dout [S * B * Q, D]; dqkv's q part is zero on the other rows, its k and v parts cover them all.
 * Each value is the one the N-query call computes given dout zero on the other rows (the same
 * products summed in the same order).
 * Softmax in float64 per row; the products are GEMMs (gemm.ts).
 */
import { Arena } from "./arena.js";
import { gemm } from "./gemm.js";

const bitsView = new Float32Array(1);
const bitsInt = new Int32Array(bitsView.buffer);
/** The float32 bit pattern of x, as an int32 (wasm takes float arguments as bits here). */
function floatBits(x: number): number {
  bitsView[0] = x;
  return bitsInt[0];
}

export function attentionForward(
  out: Float32Array,
  probs: Float32Array,
  qkv: Float32Array,
  batch: number,
  tokens: number,
  width: number,
  heads: number,
  causal: boolean,
  queries = tokens,
): void {
  const N = tokens;
  const Q = queries;
  const dh = width / heads;
  const scale = 1 / Math.sqrt(dh);
  const ld = 3 * width;
  for (let b = 0; b < batch; b++) {
    const base = b * N * ld;
    for (let h = 0; h < heads; h++) {
      const q = qkv.subarray(base + h * dh);
      const k = qkv.subarray(base + width + h * dh);
      const v = qkv.subarray(base + 2 * width + h * dh);
      const p = probs.subarray((b * heads + h) * Q * N, (b * heads + h + 1) * Q * N);
      gemm(false, true, Q, N, dh, q, ld, k, ld, p, N, false);
      const arena = Arena.of(p);
      for (let i = 0; i < Q; i++) softmaxRow(p, i * N, causal ? i + 1 : N, N, scale, arena);
      gemm(false, false, Q, dh, N, p, N, v, ld, out.subarray(b * Q * width + h * dh), width, false);
    }
  }
}

/**
 * p[row .. row + n) = softmax(scale * p) over the first `visible` entries, 0 after them. In an
 * arena the exps run in SIMD (elementwise-kernel.ts) on the multiple of 4, the rest in float64.
 */
function softmaxRow(
  p: Float32Array,
  row: number,
  visible: number,
  n: number,
  scale: number,
  arena?: Arena,
): void {
  let max = -Infinity;
  for (let j = 0; j < visible; j++) max = Math.max(max, p[row + j]);
  const vectorised = arena ? visible & ~3 : 0;
  if (arena && vectorised)
    arena.kernels.expShifted(p.byteOffset + row * 4, vectorised, floatBits(max), floatBits(scale));
  for (let j = vectorised; j < visible; j++) p[row + j] = Math.exp((p[row + j] - max) * scale);
  let sum = 0;
  for (let j = 0; j < visible; j++) sum += p[row + j];
  const inverse = 1 / sum;
  for (let j = 0; j < visible; j++) p[row + j] *= inverse;
  for (let j = visible; j < n; j++) p[row + j] = 0;
}

export function attentionBackward(
  dqkv: Float32Array,
  dout: Float32Array,
  qkv: Float32Array,
  probs: Float32Array,
  scratch: Float32Array,
  batch: number,
  tokens: number,
  width: number,
  heads: number,
  signals: number,
  queries = tokens,
): void {
  const N = tokens;
  const Q = queries;
  const dh = width / heads;
  const scale = 1 / Math.sqrt(dh);
  const ld = 3 * width;
  const dp = scratch.subarray(0, Q * N);
  for (let s = 0; s < signals; s++) {
    for (let b = 0; b < batch; b++) {
      const base = b * N * ld;
      const gradBase = (s * batch + b) * N * ld;
      for (let r = Q; r < N; r++) dqkv.fill(0, gradBase + r * ld, gradBase + r * ld + width);
      for (let h = 0; h < heads; h++) {
        const q = qkv.subarray(base + h * dh);
        const k = qkv.subarray(base + width + h * dh);
        const v = qkv.subarray(base + 2 * width + h * dh);
        const p = probs.subarray((b * heads + h) * Q * N, (b * heads + h + 1) * Q * N);
        const dO = dout.subarray((s * batch + b) * Q * width + h * dh);
        gemm(false, true, Q, N, dh, dO, width, v, ld, dp, N, false);
        gemm(true, false, N, dh, Q, p, N, dO, width, dqkv.subarray(gradBase + 2 * width + h * dh), ld, false);
        for (let i = 0; i < Q; i++) {
          const row = i * N;
          let dot = 0;
          for (let j = 0; j < N; j++) dot += dp[row + j] * p[row + j];
          for (let j = 0; j < N; j++) dp[row + j] = p[row + j] * (dp[row + j] - dot) * scale;
        }
        gemm(false, false, Q, dh, N, dp, N, k, ld, dqkv.subarray(gradBase + h * dh), ld, false);
        gemm(true, false, N, dh, Q, dp, N, q, ld, dqkv.subarray(gradBase + width + h * dh), ld, false);
      }
    }
  }
}
