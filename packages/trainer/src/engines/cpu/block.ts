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
 * classBlockForward / classBlockBackward: the image tower's last block for the class tokens alone.
 * The head reads the class token only, so once the keys and values of every row exist, the other
 * rows' attention outputs, out_proj, LN2 and MLP feed nothing; the block's output is [B, D], its
 * activations past the attention [B, ...]. Each value is the one blockForward / blockBackward
 * compute (the same products summed in the same order; the rows left out would add only zeros to
 * the weight gradients), so the tower's results do not change by a bit.
 */
import { Arena } from "./arena.js";
import {
  attentionBackward,
  attentionBackwardClass,
  attentionForward,
  attentionForwardClass,
} from "./attention.js";
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

/** y [rows, D] = block(x); y must not alias x. */
export function blockForward(
  y: Float32Array,
  x: Float32Array,
  w: BlockWeights,
  a: BlockActivations,
  dims: BlockDims,
  causal: boolean,
): void {
  const { batch, tokens, width: D, heads, mlp: F } = dims;
  const rows = batch * tokens;
  layernormForward(a.h1, a.ln1Mean, a.ln1Rstd, x, w.ln1Weight, w.ln1Bias, rows, D);
  matmulForward(a.qkv, a.h1, w.inProjWeight, w.inProjBias, rows, D, 3 * D);
  attentionForward(a.o, a.probs, a.qkv, batch, tokens, D, heads, causal);
  matmulForward(a.x2, a.o, w.outProjWeight, w.outProjBias, rows, D, D);
  addInto(a.x2, x, rows * D);
  layernormForward(a.h2, a.ln2Mean, a.ln2Rstd, a.x2, w.ln2Weight, w.ln2Bias, rows, D);
  matmulForward(a.u, a.h2, w.fcWeight, w.fcBias, rows, D, F);
  quickGeluForward(a.g, a.u, rows * F);
  matmulForward(y, a.g, w.projWeight, w.projBias, rows, F, D);
  addInto(y, a.x2, rows * D);
}

/**
 * yCls [B, D] = the class rows of block(x): every row's LN1 and in_proj (the keys and values),
 * then the class queries' attention and the rest of the block on B rows.
 */
export function classBlockForward(
  yCls: Float32Array,
  x: Float32Array,
  w: BlockWeights,
  a: BlockActivations,
  dims: BlockDims,
): void {
  const { batch, tokens, width: D, heads, mlp: F } = dims;
  const rows = batch * tokens;
  layernormForward(a.h1, a.ln1Mean, a.ln1Rstd, x, w.ln1Weight, w.ln1Bias, rows, D);
  matmulForward(a.qkv, a.h1, w.inProjWeight, w.inProjBias, rows, D, 3 * D);
  attentionForwardClass(a.o, a.probs, a.qkv, batch, tokens, D, heads);
  matmulForward(a.x2, a.o, w.outProjWeight, w.outProjBias, batch, D, D);
  for (let b = 0; b < batch; b++)
    addInto(a.x2.subarray(b * D, (b + 1) * D), x.subarray(b * tokens * D, (b * tokens + 1) * D), D);
  layernormForward(a.h2, a.ln2Mean, a.ln2Rstd, a.x2, w.ln2Weight, w.ln2Bias, batch, D);
  matmulForward(a.u, a.h2, w.fcWeight, w.fcBias, batch, D, F);
  quickGeluForward(a.g, a.u, batch * F);
  matmulForward(yCls, a.g, w.projWeight, w.projBias, batch, F, D);
  addInto(yCls, a.x2, batch * D);
}

/**
 * blockBackward for classBlockForward: dCls [S * B, D] holds the gradient of the class rows'
 * output on entry (it is overwritten); dx [S * rows, D] gets that of the block input (every row:
 * the keys and values reach them all). `inputGradient` as in blockBackward.
 */
export function classBlockBackward(
  dx: Float32Array,
  dCls: Float32Array,
  x: Float32Array,
  w: BlockWeights,
  a: BlockActivations,
  grads: BlockGradients,
  scratch: BlockScratch,
  dims: BlockDims,
  signals: number,
  inputGradient: boolean,
): void {
  const { batch, tokens, width: D, heads, mlp: F } = dims;
  const rows = batch * tokens;
  const S = signals;
  const attentionNeeded = inputGradient || grads.inProj !== undefined;
  const mlpNeeded = attentionNeeded || grads.outProj !== undefined || grads.fc !== undefined;
  const dg = scratch.dMlp;
  matmulBackward(mlpNeeded ? dg : null, grads.proj ?? null, dCls, a.g, w.projWeight, batch, F, D, S);
  if (!mlpNeeded) return;
  quickGeluBackward(dg, dg, a.u, batch * F, S);
  const dh2 = scratch.dWidth;
  matmulBackward(
    attentionNeeded || grads.outProj ? dh2 : null,
    grads.fc ?? null,
    dg,
    a.h2,
    w.fcWeight,
    batch,
    D,
    F,
    S,
  );
  if (!attentionNeeded && !grads.outProj) return;
  layernormBackward(dCls, dh2, a.x2, w.ln2Weight, a.ln2Mean, a.ln2Rstd, batch, D, S, true); // d x2
  const dO = scratch.dWidth;
  matmulBackward(
    attentionNeeded ? dO : null,
    grads.outProj ?? null,
    dCls,
    a.o,
    w.outProjWeight,
    batch,
    D,
    D,
    S,
  );
  if (!attentionNeeded) return;
  attentionBackwardClass(scratch.dQkv, dO, a.qkv, a.probs, scratch.dProbs, batch, tokens, D, heads, S);
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
  // the residual's share: d x2 on the class rows, zero on the others; then LN1's on every row
  dx.fill(0, 0, S * rows * D);
  for (let sb = 0; sb < S * batch; sb++) dx.set(dCls.subarray(sb * D, (sb + 1) * D), sb * tokens * D);
  layernormBackward(dx, dh1, x, w.ln1Weight, a.ln1Mean, a.ln1Rstd, rows, D, S, true);
}

/** dst += src over count floats (the residual adds): SIMD in an arena. */
function addInto(dst: Float32Array, src: Float32Array, count: number): void {
  const arena = Arena.common(dst, src);
  const vectorised = arena ? count & ~3 : 0;
  if (arena && vectorised) arena.kernels.addInto(dst.byteOffset, src.byteOffset, vectorised);
  for (let i = vectorised; i < count; i++) dst[i] += src[i];
}

/**
 * dx [S * rows, D]: on entry the gradient of the block output; on exit that of the block input.
 * `inputGradient` false stops as soon as every requested weight gradient is done (the lowest
 * masked block of a tower whose patch embedding is frozen): dx is then left partial.
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
): void {
  const { batch, tokens, width: D, heads, mlp: F } = dims;
  const rows = batch * tokens;
  const S = signals;
  const attentionNeeded = inputGradient || grads.inProj !== undefined;
  const mlpNeeded = attentionNeeded || grads.outProj !== undefined || grads.fc !== undefined;
  // MLP: y = x2 + proj(gelu(fc(LN2(x2))))
  const dg = scratch.dMlp;
  matmulBackward(mlpNeeded ? dg : null, grads.proj ?? null, dx, a.g, w.projWeight, rows, F, D, S);
  if (!mlpNeeded) return;
  quickGeluBackward(dg, dg, a.u, rows * F, S);
  const dh2 = scratch.dWidth;
  matmulBackward(
    attentionNeeded || grads.outProj ? dh2 : null,
    grads.fc ?? null,
    dg,
    a.h2,
    w.fcWeight,
    rows,
    D,
    F,
    S,
  );
  if (!attentionNeeded && !grads.outProj) return;
  layernormBackward(dx, dh2, a.x2, w.ln2Weight, a.ln2Mean, a.ln2Rstd, rows, D, S, true); // dx = d x2
  // attention: x2 = x + out_proj(attention(in_proj(LN1(x))))
  const dO = scratch.dWidth;
  matmulBackward(attentionNeeded ? dO : null, grads.outProj ?? null, dx, a.o, w.outProjWeight, rows, D, D, S);
  if (!attentionNeeded) return;
  attentionBackward(scratch.dQkv, dO, a.qkv, a.probs, scratch.dProbs, batch, tokens, D, heads, S);
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
  layernormBackward(dx, dh1, x, w.ln1Weight, a.ln1Mean, a.ln1Rstd, rows, D, S, true);
}
