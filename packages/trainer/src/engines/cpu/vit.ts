/**
 * vit: CLIP's image tower on the cpu engine (OpenAI's VisionTransformer), forward and backward.
 *
 *   patches = patchify(images)            [B * P, 3 p p]
 *   pe = patches Wc^T                     [B * P, D]     (the stride-p conv, no bias)
 *   x0 = embed(pe)                        [B * N, D]     (class token + positional)
 *   x = LN_pre(x0); x = block_l(x) for each l but the last
 *   xCls = the last block for the class rows alone   [B, D]  (block.ts with queries = 1: the head
 *                                                    reads nothing else)
 *   logits, features = head(xCls)         (head.ts)
 *
 * `keep` runs (the student) store every block's activations for the backward; other runs (the
 * teacher, evaluation) reuse one block's buffers. The backward takes the two logit gradients
 * [2 * B, C] and writes weight gradients [2, out, in] of the masked tensors only, going no lower
 * than the lowest masked tensor.
 */
import type { Arena } from "./arena.js";
import {
  allocBlockActivations,
  allocBlockScratch,
  type BlockActivations,
  type BlockDims,
  type BlockGradients,
  type BlockScratch,
  type BlockWeights,
  blockBackward,
  blockForward,
} from "./block.js";
import { embedBackward, embedForward } from "./embed.js";
import { type HeadActivations, type HeadWeights, headBackward, headForward } from "./head.js";
import { layernormBackward, layernormForward } from "./layernorm.js";
import { matmulBackward, matmulForward } from "./matmul.js";
import { patchifyForward } from "./patchify.js";

export interface VitDims {
  resolution: number;
  patch: number;
  /** P = (R / p)^2 */
  patches: number;
  /** N = P + 1 */
  tokens: number;
  width: number;
  heads: number;
  mlp: number;
  layers: number;
  embed: number;
  classes: number;
}

export interface VitWeights {
  /** [D, 3 p p] */
  conv1: Float32Array;
  classEmbedding: Float32Array;
  positional: Float32Array;
  lnPreWeight: Float32Array;
  lnPreBias: Float32Array;
  blocks: BlockWeights[];
  head: HeadWeights;
}

/** Weight-gradient buffers [2, out, in] of the masked tensors (absent: frozen). */
export interface VitGradients {
  conv1?: Float32Array;
  blocks: BlockGradients[];
}

export interface VitBuffers {
  maxBatch: number;
  patches: Float32Array;
  patchEmbeds: Float32Array;
  x0: Float32Array;
  lnPreMean: Float32Array;
  lnPreRstd: Float32Array;
  /** xs[l]: input of block l; xs[layers]: the tower's output, its B class rows (kept runs). */
  xs: Float32Array[];
  blocks: BlockActivations[];
  /** Ping-pong block outputs and one block's activations for runs that keep nothing. */
  transient: { xs: [Float32Array, Float32Array]; block: BlockActivations };
  head: HeadActivations;
  scratch: BlockScratch;
  /** [2 * B * N, D] gradient of the residual stream */
  dx: Float32Array;
  /** [2 * B, D] gradient of the class rows through the last block */
  dxClass: Float32Array;
  /** [2 * B * P, D] */
  dPatchEmbeds: Float32Array;
}

const SIGNALS = 2;

export function blockDims(dims: VitDims, batch: number): BlockDims {
  return { batch, tokens: dims.tokens, width: dims.width, heads: dims.heads, mlp: dims.mlp };
}

export function allocVitBuffers(arena: Arena, dims: VitDims, maxBatch: number): VitBuffers {
  const rows = maxBatch * dims.tokens;
  const D = dims.width;
  const bd = blockDims(dims, maxBatch);
  const patchLength = 3 * dims.patch * dims.patch;
  return {
    maxBatch,
    patches: arena.floats(maxBatch * dims.patches * patchLength, "patches"),
    patchEmbeds: arena.floats(maxBatch * dims.patches * D, "patch embeddings"),
    x0: arena.floats(rows * D, "embeddings"),
    lnPreMean: arena.floats(rows, "ln_pre statistics"),
    lnPreRstd: arena.floats(rows, "ln_pre statistics"),
    xs: Array.from({ length: dims.layers + 1 }, () => arena.floats(rows * D, "residual stream")),
    blocks: Array.from({ length: dims.layers }, (_, l) =>
      allocBlockActivations(arena, bd, `block ${l} activations`),
    ),
    transient: {
      xs: [arena.floats(rows * D, "residual stream"), arena.floats(rows * D, "residual stream")],
      block: allocBlockActivations(arena, bd, "teacher activations"),
    },
    head: {
      cls: arena.floats(maxBatch * D, "head"),
      mean: arena.floats(maxBatch, "head"),
      rstd: arena.floats(maxBatch, "head"),
      post: arena.floats(maxBatch * D, "head"),
      features: arena.floats(maxBatch * dims.embed, "head"),
      norms: arena.floats(maxBatch, "head"),
    },
    scratch: allocBlockScratch(arena, bd, SIGNALS),
    dx: arena.floats(SIGNALS * rows * D, "residual gradient"),
    dxClass: arena.floats(SIGNALS * maxBatch * D, "residual gradient"),
    dPatchEmbeds: arena.floats(SIGNALS * maxBatch * dims.patches * D, "patch embedding gradient"),
  };
}

/**
 * Logits [B, C] of normalised images [B, 3, R, R] (B <= maxBatch). Image embeddings before
 * normalisation are left in buf.head.features.
 */
export function vitForward(
  logits: Float32Array,
  images: Float32Array,
  w: VitWeights,
  buf: VitBuffers,
  dims: VitDims,
  batch: number,
  keep: boolean,
): void {
  const D = dims.width;
  const rows = batch * dims.tokens;
  patchifyForward(buf.patches, images, batch, dims.resolution, dims.patch);
  matmulForward(buf.patchEmbeds, buf.patches, w.conv1, null, batch * dims.patches, 3 * dims.patch ** 2, D);
  embedForward(buf.x0, buf.patchEmbeds, w.classEmbedding, w.positional, batch, dims.patches, D);
  const first = keep ? buf.xs[0] : buf.transient.xs[0];
  layernormForward(first, buf.lnPreMean, buf.lnPreRstd, buf.x0, w.lnPreWeight, w.lnPreBias, rows, D);
  const bd = blockDims(dims, batch);
  let x = first;
  const L = dims.layers;
  for (let l = 0; l < L; l++) {
    const y = keep ? buf.xs[l + 1] : buf.transient.xs[(l + 1) % 2];
    const acts = keep ? buf.blocks[l] : buf.transient.block;
    blockForward(y, x, w.blocks[l], acts, bd, false, l < L - 1 ? dims.tokens : 1);
    x = y;
  }
  headForward(logits, buf.head, x, w.head, batch, 1, D, dims.embed, dims.classes);
}

/**
 * After a kept forward of `batch` images: backward of the two logit gradients dlogits [2 * B, C]
 * (signal 0: ce, signal 1: kl) into the masked tensors' gradient buffers.
 */
export function vitBackward(
  grads: VitGradients,
  dlogits: Float32Array,
  w: VitWeights,
  buf: VitBuffers,
  dims: VitDims,
  batch: number,
): void {
  const D = dims.width;
  const rows = batch * dims.tokens;
  const bd = blockDims(dims, batch);
  const has = (g: BlockGradients) => g.inProj || g.outProj || g.fc || g.proj;
  let lowest = -1; // lowest block with a masked tensor
  for (let l = dims.layers - 1; l >= 0; l--) if (has(grads.blocks[l])) lowest = l;
  if (lowest < 0 && !grads.conv1) return;
  headBackward(buf.dxClass, dlogits, buf.head, w.head, batch, 1, D, dims.embed, dims.classes, SIGNALS);
  const stop = grads.conv1 ? 0 : lowest;
  const L = dims.layers;
  for (let l = L - 1; l >= stop; l--) {
    const inputGradient = l > stop || grads.conv1 !== undefined;
    const last = l === L - 1; // the class rows alone (block.ts), their gradient in dxClass
    blockBackward(
      buf.dx,
      buf.xs[l],
      w.blocks[l],
      buf.blocks[l],
      grads.blocks[l],
      buf.scratch,
      bd,
      SIGNALS,
      inputGradient,
      last ? 1 : dims.tokens,
      last ? buf.dxClass : buf.dx,
    );
  }
  if (!grads.conv1) return;
  const dx0 = buf.scratch.dWidth;
  layernormBackward(
    dx0,
    buf.dx,
    buf.x0,
    w.lnPreWeight,
    buf.lnPreMean,
    buf.lnPreRstd,
    rows,
    D,
    SIGNALS,
    false,
  );
  embedBackward(buf.dPatchEmbeds, dx0, batch, dims.patches, D, SIGNALS);
  const patchRows = batch * dims.patches;
  matmulBackward(
    null,
    grads.conv1,
    buf.dPatchEmbeds,
    buf.patches,
    w.conv1,
    patchRows,
    3 * dims.patch ** 2,
    D,
    SIGNALS,
  );
}
