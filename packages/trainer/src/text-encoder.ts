/**
 * encodeTextCpu: CLIP's text tower on the CPU, for class text features (OpenAI's encode_text):
 *
 *   x = token_embedding[ids] + positional_embedding      [count, L, W]
 *   x = block_l(x) for each text block, causal attention (position i sees positions <= i)
 *   x = ln_final(x);  out[n] = x[n, argmax(ids[n])] @ text_projection      [count, E]
 *
 * The pooled token is the end-of-text token (the largest id, 49407). Attention is causal, so the
 * output at a position depends only on the positions up to it: the prompts of a call are sorted by
 * their end-of-text position and run in chunks cut after the chunk's longest prompt ("a photo of
 * a goldfish." runs 8 of the 77 positions), and the last block computes its attention output, MLP
 * and everything after only for the pooled rows. Both give the same bits as running all 77
 * positions (`fullContext: true`, tested): every GEMM, LayerNorm and elementwise kernel computes a
 * row from that row alone, in an order that does not depend on the other rows, and the softmax of
 * row i never sees the entries after i (they are exact zeros in P V).
 *
 * Everything runs in the cpu engine's WebAssembly SIMD kernels inside one Arena (engines/cpu):
 * the GEMMs split by rows over worker threads (`threads`, default all cores; bit-identical for
 * any count). The arena, holding a float32 copy of the text weights (151 MB for ViT-B/16), is kept
 * per weights Map between calls (train() encodes 256 prompts a call; text-tower.ts). Output
 * embeddings are not normalised.
 */
import { availableParallelism } from "node:os";
import { type ClipConfig, UnmaskError } from "@unmask/clip";
import type { FloatTensor } from "./engine.js";
import { Arena } from "./engines/cpu/arena.js";
import { attentionForward } from "./engines/cpu/attention.js";
import {
  type BlockActivations,
  type BlockDims,
  type BlockWeights,
  blockForward,
} from "./engines/cpu/block.js";
import { gemm } from "./engines/cpu/gemm.js";
import { layernormForward } from "./engines/cpu/layernorm.js";
import { matmulForward } from "./engines/cpu/matmul.js";
import { quickGeluForward } from "./engines/cpu/quick-gelu.js";
import type { Step } from "./engines/cpu/step-threads.js";
import { type Tower, towerSteps, withTower } from "./text-tower.js";

export interface TextTowerModel {
  /** Canonical (OpenAI) names; the text tower's tensors at least. */
  text: Map<string, FloatTensor>;
  config: ClipConfig;
}

export interface EncodeTextCpuOptions {
  /** Threads for the large GEMMs (worker_threads); default os.availableParallelism(). */
  threads?: number;
  /**
   * Run all contextLength positions of every prompt through every block, as OpenAI's encode_text
   * does, instead of stopping at the end-of-text token: slower, the same result (for checking).
   */
  fullContext?: boolean;
}

export function encodeTextCpu(
  model: TextTowerModel,
  ids: Int32Array,
  count: number,
  options?: EncodeTextCpuOptions,
): Float32Array;
export function encodeTextCpu(
  weights: Map<string, FloatTensor>,
  config: ClipConfig,
  ids: Int32Array,
  count: number,
  options?: EncodeTextCpuOptions,
): Float32Array;
export function encodeTextCpu(
  first: TextTowerModel | Map<string, FloatTensor>,
  second: ClipConfig | Int32Array,
  third: Int32Array | number,
  fourth?: number | EncodeTextCpuOptions,
  fifth?: EncodeTextCpuOptions,
): Float32Array {
  const [weights, config, ids, count, options] =
    first instanceof Map
      ? [first, second as ClipConfig, third as Int32Array, fourth as number, fifth]
      : [first.text, first.config, second as Int32Array, third as number, fourth as EncodeTextCpuOptions];
  const L = config.contextLength;
  if (!Number.isSafeInteger(count) || count < 0 || ids.length !== count * L)
    throw new UnmaskError(
      "BAD_SHAPE",
      `encodeTextCpu: ${ids.length} token ids for ${count} prompts of ${L}`,
      { subject: "ids" },
    );
  const threads = Math.max(1, Math.floor(options?.threads ?? availableParallelism()));
  return withTower(weights, config, threads, (tower) =>
    encode(tower, ids, count, options?.fullContext === true),
  );
}

function encode(tower: Tower, ids: Int32Array, count: number, fullContext: boolean): Float32Array {
  const { config, blocks, acts } = tower;
  const L = config.contextLength;
  const W = config.transformerWidth;
  const E = config.embedDim;
  // pooled position per prompt: first occurrence of the largest id (torch.argmax)
  const eot = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const row = i * L;
    for (let t = 1; t < L; t++) if (ids[row + t] > ids[row + eot[i]]) eot[i] = t;
  }
  const tokensOf = (i: number) => (fullContext ? L : eot[i] + 1);
  // shortest prompts first, so that a chunk's rows are mostly real tokens
  const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => eot[a] - eot[b] || a - b);
  const out = new Float32Array(count * E);
  for (let first = 0; first < count; ) {
    let end = first + 1;
    while (end < count && (end + 1 - first) * tokensOf(order[end]) <= tower.maxRows) end++;
    const n = end - first;
    const tokens = tokensOf(order[end - 1]);
    const prompts = order.slice(first, end);
    let x = tower.xs[0];
    let y = tower.xs[1];
    /** x[i, t - from] = token_embedding[id] + positional[t] for t in [from, to) of prompt i */
    const embed = (chosen: number[], from: number, to: number) =>
      chosen.forEach((p, i) => {
        for (let t = from; t < to; t++) {
          const id = ids[p * L + t];
          if (!(id >= 0 && id < config.vocabSize))
            throw new UnmaskError(
              "BAD_TOKEN",
              `encodeTextCpu: token id ${id} (prompt ${p}, position ${t}) is outside the vocabulary of ${config.vocabSize}`,
              { subject: "ids" },
            );
          const dst = (i * (to - from) + t - from) * W;
          const e = tower.tokenEmbedding.subarray(id * W, (id + 1) * W);
          for (let d = 0; d < W; d++) x[dst + d] = e[d] + tower.positional[t * W + d];
        }
      });
    const dims: BlockDims = { batch: n, tokens, width: W, heads: config.transformerHeads, mlp: 4 * W };
    const tail = !fullContext && blocks.length > 0; // the last block on the pooled rows only
    const rowOf = (i: number) => i * tokens + eot[prompts[i]];
    let pooled: Float32Array; // ln_final of the pooled rows, [n, W]
    const prefix = tail && W % 4 === 0 && n > 1 ? sharedPrefix(ids, L, prompts, eot[prompts[0]]) : 0;
    if (prefix > 0) {
      // the positions every prompt shares, once (their qkv kept per block), then the others
      embed(prompts.slice(0, 1), 0, prefix);
      blocksThreaded(tower, x, y, { ...dims, batch: 1, tokens: prefix }, false, () => 0, "capture");
      embed(prompts, prefix, tokens);
      const rest = tokens - prefix;
      const rowOfRest = (i: number) => i * rest + eot[prompts[i]] - prefix;
      pooled = blocksThreaded(tower, x, y, { ...dims, tokens: rest }, true, rowOfRest, prefix);
    } else if (W % 4 === 0) {
      embed(prompts, 0, tokens);
      pooled = blocksThreaded(tower, x, y, dims, tail, rowOf);
    } else {
      embed(prompts, 0, tokens);
      const full = tail ? blocks.length - 1 : blocks.length;
      for (let l = 0; l < full; l++) {
        blockForward(y, x, blocks[l], acts, dims, true);
        [x, y] = [y, x];
      }
      // the pooled rows after the last block, [n, W] (in buffers the blocks no longer need)
      const last = tail
        ? lastBlockPooled(y, x, blocks[blocks.length - 1], acts, dims, rowOf)
        : gatherRows(acts.h1, x, n, W, rowOf);
      layernormForward(acts.h2, null, null, last, tower.lnFinalWeight, tower.lnFinalBias, n, W);
      pooled = acts.h2;
    }
    gemm(false, false, n, E, W, pooled, W, tower.projection, E, tower.projected, E, false);
    prompts.forEach((p, i) => {
      out.set(tower.projected.subarray(i * E, (i + 1) * E), p * E);
    });
    first = end;
  }
  return out;
}

/**
 * The blocks and ln_final with every step other than the GEMMs on the tower's step threads
 * (step-threads.ts; widths a multiple of 4): block.ts blockForward's kernels in its order, the
 * bias and residual adds and the LayerNorm that follows a GEMM run as one job on each task's rows
 * (the next block's LN1 with the block's last add), the in_proj bias with the attention of each
 * task's prompts. With `tail`, the last block after its attention runs on the pooled rows only,
 * as lastBlockPooled does. Returns ln_final of the pooled rows, [n, W] (acts.h2). x holds the
 * embedded tokens; x and y are the stream's two buffers.
 */
function blocksThreaded(
  tower: Tower,
  x: Float32Array,
  y: Float32Array,
  dims: BlockDims,
  tail: boolean,
  rowOf: (i: number) => number,
  prefix: number | "capture" = 0,
): Float32Array {
  const { blocks, acts: a } = tower;
  const { batch: n, tokens, width: D, heads, mlp: F } = dims;
  const rows = n * tokens;
  const steps = towerSteps(tower);
  const linear = (
    out: Float32Array,
    inp: Float32Array,
    weight: Float32Array,
    m: number,
    k: number,
    o: number,
  ) => gemm(false, true, m, o, k, inp, k, weight, k, out, o, false);
  const finalLn = (out: Float32Array, inp: Float32Array): Step => ({
    op: "layernorm",
    out,
    inp,
    weight: tower.lnFinalWeight,
    bias: tower.lnFinalBias,
    width: D,
  });
  const ln = (out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array): Step => ({
    op: "layernorm",
    out,
    inp,
    weight,
    bias,
    width: D,
  });
  /** in_proj and the attention of every prompt (LN1 already in a.h1); the output in a.o */
  const attention = (l: number) => {
    const w = blocks[l];
    linear(a.qkv, a.h1, w.inProjWeight, rows, D, 3 * D);
    const bias: Step = { op: "addRows", c: a.qkv, ld: 3 * D, bias: w.inProjBias, n: 3 * D };
    if (typeof prefix === "number" && prefix > 0) {
      const { qkv, probs } = a;
      const prefixQkv = tower.prefixQkv[l];
      steps.run(
        [bias, { op: "attentionPrefixed", out: a.o, probs, qkv, prefixQkv, prefix, tokens, width: D, heads }],
        n,
        tokens,
      );
      return;
    }
    steps.run(
      [
        bias,
        { op: "attention", out: a.o, probs: a.probs, qkv: a.qkv, tokens, width: D, heads, causal: true },
      ],
      n,
      tokens,
    );
    if (prefix === "capture") tower.prefixQkv[l].set(a.qkv.subarray(0, rows * 3 * D));
  };
  /**
   * out_proj, MLP and residuals on m rows: x2 = x + o Wout^T + b; y = x2 + mlp(LN2(x2)); then
   * `next` (a LayerNorm of y) on the same rows. h2 and x2 are scratch of m rows.
   */
  const rest = (
    w: BlockWeights,
    out: Float32Array,
    inp: Float32Array,
    o: Float32Array,
    x2: Float32Array,
    h2: Float32Array,
    m: number,
    next: Step | undefined,
  ) => {
    linear(x2, o, w.outProjWeight, m, D, D);
    steps.run(
      [
        { op: "addRows", c: x2, ld: D, bias: w.outProjBias, n: D },
        { op: "addInto", dst: x2, src: inp, width: D },
        ln(h2, x2, w.ln2Weight, w.ln2Bias),
      ],
      m,
    );
    linear(a.u, h2, w.fcWeight, m, D, F);
    steps.run(
      [
        { op: "addRows", c: a.u, ld: F, bias: w.fcBias, n: F },
        { op: "quickGelu", out: a.g, inp: a.u, width: F },
      ],
      m,
    );
    linear(out, a.g, w.projWeight, m, F, D);
    steps.run(
      [
        { op: "addRows", c: out, ld: D, bias: w.projBias, n: D },
        { op: "addInto", dst: out, src: x2, width: D },
        ...(next ? [next] : []),
      ],
      m,
    );
  };
  const full = tail ? blocks.length - 1 : blocks.length;
  if (blocks.length > 0) steps.run([ln(a.h1, x, blocks[0].ln1Weight, blocks[0].ln1Bias)], rows);
  for (let l = 0; l < full; l++) {
    const w = blocks[l];
    const following = blocks[l + 1];
    attention(l);
    const next = following ? ln(a.h1, y, following.ln1Weight, following.ln1Bias) : undefined;
    rest(w, y, x, a.o, a.x2, a.h2, rows, next);
    [x, y] = [y, x];
  }
  if (!tail) {
    const last = gatherRows(a.h1, x, n, D, rowOf);
    steps.run([finalLn(a.h2, last)], n);
    return a.h2;
  }
  // the last block: attention over every row (keys and values need them), the rest on the n
  // pooled rows (lastBlockPooled's buffers)
  const w = blocks[blocks.length - 1];
  attention(blocks.length - 1);
  const o = gatherRows(a.x2, a.o, n, D, rowOf);
  const xp = gatherRows(a.h2, x, n, D, rowOf);
  // out_proj into a.h1, LN2 into a.o, y into y, ln_final into a.h2 (xp is read before)
  rest(w, y, xp, o, a.h1, a.o, n, finalLn(a.h2, y));
  return a.h2;
}

/**
 * How many leading positions all `prompts` share (the same ids), at most `limit` (the earliest
 * end-of-text position: every pooled row stays outside the prefix).
 */
function sharedPrefix(ids: Int32Array, L: number, prompts: number[], limit: number): number {
  let length = 0;
  for (; length < limit; length++) {
    const id = ids[prompts[0] * L + length];
    if (!prompts.every((p) => ids[p * L + length] === id)) break;
  }
  return length;
}

/** dst[i] = src[rowOf(i)] for i < n (rows of `width`); returns dst. */
function gatherRows(
  dst: Float32Array,
  src: Float32Array,
  n: number,
  width: number,
  rowOf: (i: number) => number,
): Float32Array {
  for (let i = 0; i < n; i++) dst.set(src.subarray(rowOf(i) * width, (rowOf(i) + 1) * width), i * width);
  return dst;
}

/**
 * The last block (block.ts blockForward) for the pooled rows only: LN1, in_proj and attention over
 * every row (keys and values need them), then out_proj, the residual, LN2 and the MLP on the n
 * gathered pooled rows: the same kernels on the same rows, so the same bits. Returns y [n, W]
 * (written to `y`); the activation buffers serve as scratch.
 */
function lastBlockPooled(
  y: Float32Array,
  x: Float32Array,
  w: BlockWeights,
  a: BlockActivations,
  dims: BlockDims,
  rowOf: (i: number) => number,
): Float32Array {
  const { batch: n, tokens, width: D, heads, mlp: F } = dims;
  const rows = n * tokens;
  layernormForward(a.h1, a.ln1Mean, a.ln1Rstd, x, w.ln1Weight, w.ln1Bias, rows, D);
  matmulForward(a.qkv, a.h1, w.inProjWeight, w.inProjBias, rows, D, 3 * D);
  attentionForward(a.o, a.probs, a.qkv, n, tokens, D, heads, true);
  const o = gatherRows(a.x2, a.o, n, D, rowOf);
  const xp = gatherRows(a.h2, x, n, D, rowOf);
  const x2 = a.h1;
  matmulForward(x2, o, w.outProjWeight, w.outProjBias, n, D, D);
  addInto(x2, xp, n * D);
  const h2 = a.o;
  layernormForward(h2, a.ln2Mean, a.ln2Rstd, x2, w.ln2Weight, w.ln2Bias, n, D);
  matmulForward(a.u, h2, w.fcWeight, w.fcBias, n, D, F);
  quickGeluForward(a.g, a.u, n * F);
  matmulForward(y, a.g, w.projWeight, w.projBias, n, F, D);
  addInto(y, x2, n * D);
  return y;
}

/** dst += src over count floats: the residual add of block.ts (SIMD in an arena). */
function addInto(dst: Float32Array, src: Float32Array, count: number): void {
  const arena = Arena.common(dst, src);
  const vectorised = arena ? count & ~3 : 0;
  if (arena && vectorised) arena.kernels.addInto(dst.byteOffset, src.byteOffset, vectorised);
  for (let i = vectorised; i < count; i++) dst[i] += src[i];
}
