/**
 * encodeTextCpu: CLIP's text tower on the CPU, for class text features (OpenAI's encode_text):
 *
 *   x = token_embedding[ids] + positional_embedding      [count, L, W]
 *   x = block_l(x) for each text block, causal attention (position i sees positions <= i)
 *   x = ln_final(x);  out[n] = x[n, argmax(ids[n])] @ text_projection      [count, E]
 *
 * The pooled token is the end-of-text token (the largest id, 49407). Because attention is causal,
 * positions after the last pooled token of a chunk cannot change it, so each chunk is cut after
 * its longest prompt: the result is identical and short prompts cost little. Output embeddings
 * are not normalised.
 */
import { type ClipConfig, UnmaskError } from "@unmask/clip";
import type { FloatTensor } from "./engine.js";
import { Arena } from "./engines/cpu/arena.js";
import {
  allocBlockActivations,
  type BlockDims,
  type BlockWeights,
  blockForward,
} from "./engines/cpu/block.js";
import { layernormForward } from "./engines/cpu/layernorm.js";

/** Prompts per chunk: bounds the arena (activations of CHUNK x 77 tokens). */
const CHUNK = 64;

export interface TextTowerModel {
  /** Canonical (OpenAI) names; the text tower's tensors at least. */
  text: Map<string, FloatTensor>;
  config: ClipConfig;
}

export function encodeTextCpu(model: TextTowerModel, ids: Int32Array, count: number): Float32Array;
export function encodeTextCpu(
  weights: Map<string, FloatTensor>,
  config: ClipConfig,
  ids: Int32Array,
  count: number,
): Float32Array;
export function encodeTextCpu(
  first: TextTowerModel | Map<string, FloatTensor>,
  second: ClipConfig | Int32Array,
  third: Int32Array | number,
  fourth?: number,
): Float32Array {
  const [weights, config, ids, count] =
    first instanceof Map
      ? [first, second as ClipConfig, third as Int32Array, fourth as number]
      : [first.text, first.config, second as Int32Array, third as number];
  const L = config.contextLength;
  const W = config.transformerWidth;
  const E = config.embedDim;
  if (!Number.isSafeInteger(count) || count < 0 || ids.length !== count * L)
    throw new UnmaskError(
      "BAD_SHAPE",
      `encodeTextCpu: ${ids.length} token ids for ${count} prompts of ${L}`,
      {
        subject: "ids",
      },
    );
  const tensor = (name: string, numel: number): Float32Array => {
    const t = weights.get(name);
    if (!t)
      throw new UnmaskError("TENSOR_NOT_FOUND", `encodeTextCpu: the model has no tensor ${name}`, {
        subject: name,
      });
    if (t.data.length !== numel)
      throw new UnmaskError(
        "BAD_SHAPE",
        `encodeTextCpu: tensor ${name} has shape [${t.shape}], expected ${numel} values`,
        {
          subject: name,
        },
      );
    return t.data;
  };
  const tokenEmbedding = tensor("token_embedding.weight", config.vocabSize * W);
  const positional = tensor("positional_embedding", L * W);
  const projection = tensor("text_projection", W * E);
  const lnFinalWeight = tensor("ln_final.weight", W);
  const lnFinalBias = tensor("ln_final.bias", W);
  const arena = new Arena();
  const blocks: BlockWeights[] = [];
  for (let l = 0; l < config.transformerLayers; l++) {
    const p = `transformer.resblocks.${l}.`;
    const load = (name: string, numel: number) => arena.copyOf(tensor(p + name, numel), p + name);
    blocks.push({
      ln1Weight: load("ln_1.weight", W),
      ln1Bias: load("ln_1.bias", W),
      inProjWeight: load("attn.in_proj_weight", 3 * W * W),
      inProjBias: load("attn.in_proj_bias", 3 * W),
      outProjWeight: load("attn.out_proj.weight", W * W),
      outProjBias: load("attn.out_proj.bias", W),
      ln2Weight: load("ln_2.weight", W),
      ln2Bias: load("ln_2.bias", W),
      fcWeight: load("mlp.c_fc.weight", 4 * W * W),
      fcBias: load("mlp.c_fc.bias", 4 * W),
      projWeight: load("mlp.c_proj.weight", 4 * W * W),
      projBias: load("mlp.c_proj.bias", W),
    });
  }
  const maxDims: BlockDims = {
    batch: Math.min(CHUNK, Math.max(1, count)),
    tokens: L,
    width: W,
    heads: config.transformerHeads,
    mlp: 4 * W,
  };
  const acts = allocBlockActivations(arena, maxDims, "text activations");
  const xs = [
    arena.floats(maxDims.batch * L * W, "text stream"),
    arena.floats(maxDims.batch * L * W, "text stream"),
  ];
  const out = new Float32Array(count * E);
  const pooled = new Float32Array(W);
  const pooledIn = new Float32Array(W);
  for (let start = 0; start < count; start += CHUNK) {
    const n = Math.min(CHUNK, count - start);
    // pooled position per prompt: first occurrence of the largest id (torch.argmax)
    const eot = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const row = (start + i) * L;
      for (let t = 1; t < L; t++) if (ids[row + t] > ids[row + eot[i]]) eot[i] = t;
    }
    const tokens = Math.max(...eot) + 1;
    let x = xs[0];
    for (let i = 0; i < n; i++) {
      for (let t = 0; t < tokens; t++) {
        const id = ids[(start + i) * L + t];
        if (!(id >= 0 && id < config.vocabSize))
          throw new UnmaskError(
            "BAD_TOKEN",
            `encodeTextCpu: token id ${id} is outside the vocabulary of ${config.vocabSize}`,
            {
              subject: "ids",
            },
          );
        const dst = (i * tokens + t) * W;
        for (let d = 0; d < W; d++) x[dst + d] = tokenEmbedding[id * W + d] + positional[t * W + d];
      }
    }
    const dims: BlockDims = { ...maxDims, batch: n, tokens };
    for (let l = 0; l < blocks.length; l++) {
      const y = xs[(l + 1) % 2];
      blockForward(y, x, blocks[l], acts, dims, true);
      x = y;
    }
    for (let i = 0; i < n; i++) {
      pooledIn.set(x.subarray((i * tokens + eot[i]) * W, (i * tokens + eot[i] + 1) * W));
      layernormForward(pooled, null, null, pooledIn, lnFinalWeight, lnFinalBias, 1, W);
      for (let e = 0; e < E; e++) {
        let sum = 0;
        for (let d = 0; d < W; d++) sum += pooled[d] * projection[d * E + e];
        out[(start + i) * E + e] = sum;
      }
    }
  }
  return out;
}
