/**
 * block: one pre-LayerNorm transformer block of CLIP (OpenAI's ResidualAttentionBlock), forward
 * and backward, built from the ops beside it.
 *
 *   h1 = LN1(x);  qkv = h1 Win^T + bin;  o = attention(qkv);  x2 = x + o Wout^T + bout
 *   h2 = LN2(x2); u = h2 Wfc^T + bfc;    g = quick_gelu(u);   y = x2 + g Wproj^T + bproj
 *
 * Rows = B * N tokens. Weights are whatever the caller hands in: the masked W' for a student,
 * the original W for the teacher. The backward carries `signals` gradient signals stacked
 * signal-major through the same GEMMs (docs/cuda-engine.md 2) and produces weight gradients only
 * for the tensors given a buffer in `grads` (the masked ones).
 *
 * `queries` Q < N: the first Q rows of each image are the block's only queries (the image tower's
 * last block, Q = 1: the head reads the class token alone). Every row's LN1 and in_proj still run
 * (the keys and values), everything after the attention runs on those B * Q rows: the output is
 * [B * Q, D], the activations past the attention [B * Q, ...]. Each value is the one the whole
 * block computes (the same products summed in the same order; the rows left out would add only
 * zeros to the weight gradients), so a tower's results do not change by a bit.
 */
import { Arena } from "./arena.js";
import { attentionBackward, attentionForward } from "./attention.js";
import { layernormBackward, layernormForward } from "./layernorm.js";
import { matmulBackward, matmulForward } from "./matmul.js";
import { quickGeluBackward, quickGeluForward } from "./quick-gelu.js";

export interface BlockWeights {
  ln1Weight: Float32Array;
  ln1Bias: Float32Array;
  /** [3D, D] */
  inProjWeight: Float32Array;
  inProjBias: Float32Array;
  /** [D, D] */
  outProjWeight: Float32Array;
  outProjBias: Float32Array;
  ln2Weight: Float32Array;
  ln2Bias: Float32Array;
  /** [F, D] */
  fcWeight: Float32Array;
  fcBias: Float32Array;
  /** [D, F] */
  projWeight: Float32Array;
  projBias: Float32Array;
}

export interface BlockDims {
  batch: number;
  tokens: number;
  width: number;
  heads: number;
  /** MLP width F (4 D in CLIP). */
  mlp: number;
}

/** What the backward needs from the forward (sizes for `rows` = maxBatch * N). */
export interface BlockActivations {
  ln1Mean: Float32Array;
  ln1Rstd: Float32Array;
  h1: Float32Array;
  qkv: Float32Array;
  probs: Float32Array;
  o: Float32Array;
  x2: Float32Array;
  ln2Mean: Float32Array;
  ln2Rstd: Float32Array;
  h2: Float32Array;
  u: Float32Array;
  g: Float32Array;
}

/** Weight-gradient outputs [S, out, in] of the masked tensors of one block (absent: frozen). */
export interface BlockGradients {
  inProj?: Float32Array;
  outProj?: Float32Array;
  fc?: Float32Array;
  proj?: Float32Array;
}

/** Gradient scratch shared by all blocks, for S signals. */
export interface BlockScratch {
  /** [S * rows, D] */
  dWidth: Float32Array;
  /** [S * rows, 3D] */
  dQkv: Float32Array;
  /** [S * rows, F] */
  dMlp: Float32Array;
  /** [N, N] */
  dProbs: Float32Array;
}

export function allocBlockActivations(arena: Arena, dims: BlockDims, what: string): BlockActivations {
  const rows = dims.batch * dims.tokens;
  const { width: D, mlp: F } = dims;
  return {
    ln1Mean: arena.floats(rows, what),
    ln1Rstd: arena.floats(rows, what),
    h1: arena.floats(rows * D, what),
    qkv: arena.floats(rows * 3 * D, what),
    probs: arena.floats(dims.batch * dims.heads * dims.tokens * dims.tokens, what),
    o: arena.floats(rows * D, what),
    x2: arena.floats(rows * D, what),
    ln2Mean: arena.floats(rows, what),
    ln2Rstd: arena.floats(rows, what),
    h2: arena.floats(rows * D, what),
    u: arena.floats(rows * F, what),
    g: arena.floats(rows * F, what),
  };
}

export function allocBlockScratch(arena: Arena, dims: BlockDims, signals: number): BlockScratch {
  const rows = signals * dims.batch * dims.tokens;
  return {
    dWidth: arena.floats(rows * dims.width, "block gradient scratch"),
    dQkv: arena.floats(rows * 3 * dims.width, "block gradient scratch"),
    dMlp: arena.floats(rows * dims.mlp, "block gradient scratch"),
    dProbs: arena.floats(dims.tokens * dims.tokens, "block gradient scratch"),
  };
}

/** y [B * queries, D] = block(x) (its first `queries` rows of each image); y must not alias x. */
export function blockForward(
  y: Float32Array,
  x: Float32Array,
  w: BlockWeights,
  a: BlockActivations,
  dims: BlockDims,
  causal: boolean,
  queries = dims.tokens,
): void {
  const { batch, tokens, width: D, heads, mlp: F } = dims;
  const rows = batch * tokens;
  const kept = batch * queries; // the rows past the attention
  layernormForward(a.h1, a.ln1Mean, a.ln1Rstd, x, w.ln1Weight, w.ln1Bias, rows, D);
  matmulForward(a.qkv, a.h1, w.inProjWeight, w.inProjBias, rows, D, 3 * D);
  attentionForward(a.o, a.probs, a.qkv, batch, tokens, D, heads, causal, queries);
  matmulForward(a.x2, a.o, w.outProjWeight, w.outProjBias, kept, D, D);
  for (let b = 0; b < batch; b++)
    addInto(a.x2.subarray(b * queries * D), x.subarray(b * tokens * D), queries * D);
  layernormForward(a.h2, a.ln2Mean, a.ln2Rstd, a.x2, w.ln2Weight, w.ln2Bias, kept, D);
  matmulForward(a.u, a.h2, w.fcWeight, w.fcBias, kept, D, F);
  quickGeluForward(a.g, a.u, kept * F);
  matmulForward(y, a.g, w.projWeight, w.projBias, kept, F, D);
  addInto(y, a.x2, kept * D);
}

/** dst += src over count floats (the residual adds): SIMD in an arena. */
function addInto(dst: Float32Array, src: Float32Array, count: number): void {
  const arena = Arena.common(dst, src);
  const vectorised = arena ? count & ~3 : 0;
  if (arena && vectorised) arena.kernels.addInto(dst.byteOffset, src.byteOffset, vectorised);
  for (let i = vectorised; i < count; i++) dst[i] += src[i];
}

/**
 * dx [S * rows, D]: on exit the gradient of the block input; dy [S * B * queries, D]: on entry that
 * of the block output (overwritten; by default dx itself, in place). `inputGradient` false stops
 * as soon as every requested weight gradient is done (the lowest masked block of a tower whose
 * patch embedding is frozen): dx is then left partial.
 */
export function blockBackward(
  dx: Float32Array,
  x: Float32Array,
  w: BlockWeights,
  a: BlockActivations,
  grads: BlockGradients,
  scratch: BlockScratch,
  dims: BlockDims,
  signals: number,
  inputGradient: boolean,
  queries = dims.tokens,
  dy = dx,
): void {
  const { batch, tokens, width: D, heads, mlp: F } = dims;
  const rows = batch * tokens;
  const kept = batch * queries;
  const S = signals;
  const attentionNeeded = inputGradient || grads.inProj !== undefined;
  const mlpNeeded = attentionNeeded || grads.outProj !== undefined || grads.fc !== undefined;
  // MLP: y = x2 + proj(gelu(fc(LN2(x2))))
  const dg = scratch.dMlp;
  matmulBackward(mlpNeeded ? dg : null, grads.proj ?? null, dy, a.g, w.projWeight, kept, F, D, S);
  if (!mlpNeeded) return;
  quickGeluBackward(dg, dg, a.u, kept * F, S);
  const dh2 = scratch.dWidth;
  matmulBackward(
    attentionNeeded || grads.outProj ? dh2 : null,
    grads.fc ?? null,
    dg,
    a.h2,
    w.fcWeight,
    kept,
    D,
    F,
    S,
  );
  if (!attentionNeeded && !grads.outProj) return;
  layernormBackward(dy, dh2, a.x2, w.ln2Weight, a.ln2Mean, a.ln2Rstd, kept, D, S, true); // dy = d x2
  // attention: x2 = x + out_proj(attention(in_proj(LN1(x))))
  const dO = scratch.dWidth;
  matmulBackward(attentionNeeded ? dO : null, grads.outProj ?? null, dy, a.o, w.outProjWeight, kept, D, D, S);
  if (!attentionNeeded) return;
  attentionBackward(scratch.dQkv, dO, a.qkv, a.probs, scratch.dProbs, batch, tokens, D, heads, S, queries);
  const dh1 = scratch.dWidth;
  matmulBackward(
    inputGradient ? dh1 : null,
    grads.inProj ?? null,
    scratch.dQkv,
    a.h1,
    w.inProjWeight,
    rows,
    D,
    3 * D,
    S,
  );
  if (!inputGradient) return;
  if (dy !== dx) {
    // the residual's share: d x2 on the query rows, zero on the others
    dx.fill(0, 0, S * rows * D);
    for (let sb = 0; sb < S * batch; sb++)
      dx.set(dy.subarray(sb * queries * D, (sb + 1) * queries * D), sb * tokens * D);
  }
  layernormBackward(dx, dh1, x, w.ln1Weight, a.ln1Mean, a.ln1Rstd, rows, D, S, true);
}
