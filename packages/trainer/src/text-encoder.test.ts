/**
 * The cpu text tower and the cpu engine's image tower against the float64 reference outputs of
 * fixtures/tiny-vit-p8/expected.safetensors (OpenAI's encode_text / encode_image on the fp16-rounded
 * weights); the text tower's shortcuts (stopping at the end-of-text token, the pooled-only last
 * block, sorting, chunking, threads) against the full 77-position computation, bit for bit; and
 * against the implementation they replaced (encodeTextCpuPrevious below), to float32 rounding.
 */
import { type ClipConfig, SafetensorsFile, vitConfig } from "@unmask/clip";
import { fixturePath } from "@unmask/fixtures";
import { describe, expect, it } from "vitest";
import { DEFAULT_HYPER, type FloatTensor } from "./engine.js";
import { Arena } from "./engines/cpu/arena.js";
import {
  allocBlockActivations,
  type BlockDims,
  type BlockWeights,
  blockForward,
} from "./engines/cpu/block.js";
import { createCpuEngine } from "./engines/cpu/cpu-engine.js";
import { readHfWeightsFloat32 } from "./engines/cpu/hf-weights.js";
import { layernormForward } from "./engines/cpu/layernorm.js";
import { normals } from "./engines/cpu/random-model.js";
import { encodeTextCpu } from "./text-encoder.js";

async function expected() {
  const file = await SafetensorsFile.open(fixturePath("tiny-vit-p8/expected.safetensors"));
  try {
    const ids = await file.readBytes("input_ids");
    return {
      inputIds: new Int32Array(ids.buffer, ids.byteOffset, ids.byteLength / 4),
      pixelValues: await file.readFloat32("pixel_values"),
      imageEmbeds: await file.readFloat32("image_embeds"),
      textEmbeds: await file.readFloat32("text_embeds"),
    };
  } finally {
    await file.close();
  }
}

function relativeError(x: Float32Array, y: Float32Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < y.length; i++) {
    err = Math.max(err, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return err / scale;
}

describe("cpu towers against the float64 reference", () => {
  it("encodeTextCpu gives text_embeds (causal mask, pooled at the end-of-text token)", async () => {
    const ref = await expected();
    const model = await readHfWeightsFloat32(fixturePath("tiny-vit-p8/hf/model.safetensors"));
    const count = ref.inputIds.length / model.config.contextLength;
    const out = encodeTextCpu(model.weights, model.config, ref.inputIds, count);
    expect(out.length).toBe(ref.textEmbeds.length);
    expect(relativeError(out, ref.textEmbeds)).toBeLessThan(1e-5);
    // the { text, config } form gives the same numbers, and prompts encode independently
    const one = encodeTextCpu(
      { text: model.weights, config: model.config },
      ref.inputIds.subarray(77, 154),
      1,
    );
    expect(relativeError(one, ref.textEmbeds.subarray(64, 128))).toBeLessThan(1e-5);
  });

  it("the engine's forward gives image_embeds (features) for pixel_values", async () => {
    const ref = await expected();
    const model = await readHfWeightsFloat32(fixturePath("tiny-vit-p8/hf/model.safetensors"));
    const engine = await createCpuEngine(
      {
        config: model.config,
        weights: model.weights,
        maskedTensors: ["visual.conv1.weight", "visual.transformer.resblocks.1.attn.in_proj_weight"],
        textFeatures: {
          shape: [1, model.config.embedDim],
          data: new Float32Array(model.config.embedDim).fill(0.125),
        },
        logitScale: model.logitScale,
      },
      { maxBatch: 2, hyper: DEFAULT_HYPER, seed: 0 },
    );
    // 3 images through a maxBatch of 2: chunked
    for (const teacher of [false, true]) {
      const features = await engine.forward(ref.pixelValues, 3, { output: "features", teacher });
      expect(relativeError(features, ref.imageEmbeds)).toBeLessThan(1e-5);
    }
    await engine.dispose();
  });
});

/**
 * encodeTextCpu as it was before the shortcuts and threads (commit 5ce378b), trimmed of its checks:
 * chunks of 64 prompts in input order cut after each chunk's longest prompt, one thread, every
 * block on every row, ln_final and the projection in float64 per prompt.
 */
function encodeTextCpuPrevious(
  weights: Map<string, FloatTensor>,
  config: ClipConfig,
  ids: Int32Array,
  count: number,
): Float32Array {
  const CHUNK = 64;
  const { contextLength: L, transformerWidth: W, embedDim: E } = config;
  const tensor = (name: string) => (weights.get(name) as FloatTensor).data;
  const arena = new Arena();
  const blocks: BlockWeights[] = [];
  for (let l = 0; l < config.transformerLayers; l++) {
    const load = (name: string) => arena.copyOf(tensor(`transformer.resblocks.${l}.${name}`));
    blocks.push({
      ln1Weight: load("ln_1.weight"),
      ln1Bias: load("ln_1.bias"),
      inProjWeight: load("attn.in_proj_weight"),
      inProjBias: load("attn.in_proj_bias"),
      outProjWeight: load("attn.out_proj.weight"),
      outProjBias: load("attn.out_proj.bias"),
      ln2Weight: load("ln_2.weight"),
      ln2Bias: load("ln_2.bias"),
      fcWeight: load("mlp.c_fc.weight"),
      fcBias: load("mlp.c_fc.bias"),
      projWeight: load("mlp.c_proj.weight"),
      projBias: load("mlp.c_proj.bias"),
    });
  }
  const batch = Math.min(CHUNK, Math.max(1, count));
  const maxDims: BlockDims = { batch, tokens: L, width: W, heads: config.transformerHeads, mlp: 4 * W };
  const acts = allocBlockActivations(arena, maxDims, "text activations");
  const xs = [arena.floats(batch * L * W), arena.floats(batch * L * W)];
  const [embedding, positional, projection] = [
    tensor("token_embedding.weight"),
    tensor("positional_embedding"),
    tensor("text_projection"),
  ];
  const out = new Float32Array(count * E);
  const pooled = new Float32Array(W);
  for (let start = 0; start < count; start += CHUNK) {
    const n = Math.min(CHUNK, count - start);
    const eot = new Int32Array(n);
    for (let i = 0; i < n; i++)
      for (let t = 1; t < L; t++) if (ids[(start + i) * L + t] > ids[(start + i) * L + eot[i]]) eot[i] = t;
    const tokens = Math.max(...eot) + 1;
    let x = xs[0];
    for (let i = 0; i < n; i++)
      for (let t = 0; t < tokens; t++) {
        const id = ids[(start + i) * L + t];
        for (let d = 0; d < W; d++)
          x[(i * tokens + t) * W + d] = embedding[id * W + d] + positional[t * W + d];
      }
    for (let l = 0; l < blocks.length; l++) {
      const y = xs[(l + 1) % 2];
      blockForward(y, x, blocks[l], acts, { ...maxDims, batch: n, tokens }, true);
      x = y;
    }
    for (let i = 0; i < n; i++) {
      const row = x.slice((i * tokens + eot[i]) * W, (i * tokens + eot[i] + 1) * W);
      layernormForward(pooled, null, null, row, tensor("ln_final.weight"), tensor("ln_final.bias"), 1, W);
      for (let e = 0; e < E; e++) {
        let sum = 0;
        for (let d = 0; d < W; d++) sum += pooled[d] * projection[d * E + e];
        out[(start + i) * E + e] = sum;
      }
    }
  }
  return out;
}

/** A random text tower of `config` (OpenAI's init scales; LayerNorm weights near 1). */
function randomTextTower(config: ClipConfig, seed: number): Map<string, FloatTensor> {
  const W = config.transformerWidth;
  const random = normals(seed);
  const weights = new Map<string, FloatTensor>();
  const add = (name: string, shape: number[], std: number, mean = 0) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = mean + std * random();
    weights.set(name, { shape, data });
  };
  add("token_embedding.weight", [config.vocabSize, W], 0.02);
  add("positional_embedding", [config.contextLength, W], 0.01);
  add("text_projection", [W, config.embedDim], W ** -0.5);
  add("ln_final.weight", [W], 0.1, 1);
  add("ln_final.bias", [W], 0.1);
  for (let l = 0; l < config.transformerLayers; l++) {
    const p = `transformer.resblocks.${l}.`;
    add(`${p}ln_1.weight`, [W], 0.1, 1);
    add(`${p}ln_1.bias`, [W], 0.1);
    add(`${p}attn.in_proj_weight`, [3 * W, W], W ** -0.5);
    add(`${p}attn.in_proj_bias`, [3 * W], 0.02);
    add(`${p}attn.out_proj.weight`, [W, W], W ** -0.5);
    add(`${p}attn.out_proj.bias`, [W], 0.02);
    add(`${p}ln_2.weight`, [W], 0.1, 1);
    add(`${p}ln_2.bias`, [W], 0.1);
    add(`${p}mlp.c_fc.weight`, [4 * W, W], W ** -0.5);
    add(`${p}mlp.c_fc.bias`, [4 * W], 0.02);
    add(`${p}mlp.c_proj.weight`, [W, 4 * W], (4 * W) ** -0.5);
    add(`${p}mlp.c_proj.bias`, [W], 0.02);
  }
  return weights;
}

/**
 * `count` prompts of random ids below the end-of-text id (vocabSize - 1), each with its end-of-text
 * token at a random position in [1, maxEot] (start-of-text first, zeros after, as the tokenizer
 * pads), and one prompt with no end-of-text token at all (argmax then picks its largest id).
 */
function randomIds(config: ClipConfig, count: number, maxEot: number, seed: number): Int32Array {
  const L = config.contextLength;
  const eotId = config.vocabSize - 1;
  let s = seed >>> 0;
  const next = (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
  const ids = new Int32Array(count * L);
  for (let i = 0; i < count; i++) {
    const eot = 1 + next(maxEot);
    ids[i * L] = eotId - 1;
    for (let t = 1; t < eot; t++) ids[i * L + t] = next(eotId - 1);
    if (i !== 3) ids[i * L + eot] = eotId;
  }
  return ids;
}

describe("encodeTextCpu shortcuts give the full computation's bits", () => {
  const config = vitConfig({
    embedDim: 96,
    imageResolution: 32,
    visionLayers: 1,
    visionWidth: 64,
    visionPatchSize: 8,
    contextLength: 77,
    vocabSize: 500,
    transformerWidth: 128,
    transformerLayers: 3,
  });

  it("stops at the end-of-text token: the same bits as all 77 positions (fixture ids)", async () => {
    const ref = await expected();
    const model = await readHfWeightsFloat32(fixturePath("tiny-vit-p8/hf/model.safetensors"));
    const count = ref.inputIds.length / 77;
    const short = encodeTextCpu(model.weights, model.config, ref.inputIds, count, { threads: 2 });
    const full = encodeTextCpu(model.weights, model.config, ref.inputIds, count, { fullContext: true });
    expect(short).toEqual(full);
    expect(relativeError(short, ref.textEmbeds)).toBeLessThan(1e-5);
  });

  it("random ids of mixed lengths, over several chunks, on 1 and 3 threads: the same bits", () => {
    const weights = randomTextTower(config, 7);
    // 60 prompts x 77 positions = 4,620 rows: three chunks of full context, one of short prompts
    const ids = randomIds(config, 60, 40, 11);
    const full = encodeTextCpu(weights, config, ids, 60, { fullContext: true, threads: 1 });
    expect(full.every(Number.isFinite)).toBe(true);
    expect(encodeTextCpu(weights, config, ids, 60, { threads: 1 })).toEqual(full);
    expect(encodeTextCpu(weights, config, ids, 60, { threads: 3 })).toEqual(full);
    // a prompt alone (its own chunk length) gives its row of the batch
    const one = encodeTextCpu(weights, config, ids.subarray(5 * 77, 6 * 77), 1, { threads: 1 });
    expect(one).toEqual(full.subarray(5 * 96, 6 * 96));
  });

  it("prompts sharing their first positions (a template's words) run them once: the same bits", () => {
    const weights = randomTextTower(config, 9);
    const ids = randomIds(config, 40, 30, 13);
    const L = config.contextLength;
    for (let i = 0; i < 40; i++) {
      const row = ids.subarray(i * L, (i + 1) * L);
      // "a photo of a" after the start token, where the prompt is long enough to hold it
      if (row.indexOf(config.vocabSize - 1) > 5) row.set([320, 125, 39, 320], 1);
    }
    const full = encodeTextCpu(weights, config, ids, 40, { fullContext: true, threads: 1 });
    expect(encodeTextCpu(weights, config, ids, 40, { threads: 1 })).toEqual(full);
    expect(encodeTextCpu(weights, config, ids, 40, { threads: 3 })).toEqual(full);
    // the long prompts alone: one chunk that shares 5 positions
    const long = [...Array(40).keys()].filter(
      (i) => ids.subarray(i * L, (i + 1) * L).indexOf(config.vocabSize - 1) > 5,
    );
    expect(long.length).toBeGreaterThan(10);
    const picked = new Int32Array(long.length * L);
    for (const [j, p] of long.entries()) picked.set(ids.subarray(p * L, (p + 1) * L), j * L);
    const some = encodeTextCpu(weights, config, picked, long.length, { threads: 2 });
    const expected = new Float32Array(long.length * 96);
    for (const [j, p] of long.entries()) expected.set(full.subarray(p * 96, (p + 1) * 96), j * 96);
    expect(some).toEqual(expected);
  });

  it("agrees with the previous implementation to float32 rounding", () => {
    const weights = randomTextTower(config, 3);
    const ids = randomIds(config, 70, 20, 5);
    const now = encodeTextCpu(weights, config, ids, 70);
    const before = encodeTextCpuPrevious(weights, config, ids, 70);
    expect(relativeError(now, before)).toBeLessThan(1e-5);
  });

  it("refuses ids of the wrong length and ids outside the vocabulary", () => {
    const weights = randomTextTower(config, 3);
    expect(() => encodeTextCpu(weights, config, new Int32Array(76), 1)).toThrow(
      expect.objectContaining({ code: "BAD_SHAPE" }),
    );
    const ids = randomIds(config, 2, 5, 1);
    ids[77 + 1] = config.vocabSize + 4;
    expect(() => encodeTextCpu(weights, config, ids, 2)).toThrow(
      expect.objectContaining({ code: "BAD_TOKEN" }),
    );
    const missing = new Map(weights);
    missing.delete("transformer.resblocks.2.mlp.c_fc.bias");
    expect(() => encodeTextCpu(missing, config, ids, 2)).toThrow(
      expect.objectContaining({ code: "TENSOR_NOT_FOUND" }),
    );
  });
});
