/**
 * The cpu text tower's working state (text-encoder.ts): the text weights copied into one Arena
 * (the cpu engine's shared WebAssembly memory, so the SIMD kernels and the GEMM worker threads
 * reach them) with activation buffers for CHUNK_ROWS token rows. A tower is kept per weights Map
 * between calls, and rebuilt when a tensor object of the map, the config or the thread count
 * changes; its threads (the GEMMs' and the other steps', step-threads.ts) stop after IDLE_STOP_MS
 * without a call.
 */
import { type ClipConfig, UnmaskError } from "@unmask/clip";
import type { FloatTensor } from "./engine.js";
import { Arena } from "./engines/cpu/arena.js";
import { allocBlockActivations, type BlockActivations, type BlockWeights } from "./engines/cpu/block.js";
import { StepThreads, stepScratchFloats } from "./engines/cpu/step-threads.js";

/**
 * Token rows (prompts x positions) per chunk. Bounds the activations (about 17 W floats a row:
 * 71 MB at width 512) while keeping the GEMMs tall enough to split into 16 row blocks of 128.
 */
export const CHUNK_ROWS = 2048;
/** A kept tower stops its worker threads after this long without a call (they sleep, but hold memory). */
export const IDLE_STOP_MS = 1000;

/** The text weights inside one arena, with buffers for CHUNK_ROWS token rows. */
export interface Tower {
  sources: FloatTensor[];
  config: ClipConfig;
  threads: number;
  arena: Arena;
  tokenEmbedding: Float32Array;
  positional: Float32Array;
  blocks: BlockWeights[];
  lnFinalWeight: Float32Array;
  lnFinalBias: Float32Array;
  projection: Float32Array;
  maxRows: number;
  acts: BlockActivations;
  xs: [Float32Array, Float32Array];
  /** [maxRows, E] */
  projected: Float32Array;
  /** The non-GEMM steps' threads (step-threads.ts), started on first use and stopped when idle. */
  steps?: StepThreads;
  /** Their scratch, one per thread, allocated once. */
  stepScratch: Float32Array[];
  /** Per block, [contextLength, 3 W]: the qkv rows of a prefix that the prompts of a chunk share. */
  prefixQkv: Float32Array[];
  idleTimer?: ReturnType<typeof setTimeout>;
}

/** The tower's step threads, started if needed. */
export function towerSteps(tower: Tower): StepThreads {
  tower.steps ??= new StepThreads(tower.arena, tower.threads, (i) => {
    tower.stepScratch[i] ??= tower.arena.floats(
      stepScratchFloats(tower.config.contextLength, tower.config.transformerWidth),
      `text step scratch ${i}`,
    );
    return tower.stepScratch[i];
  });
  return tower.steps;
}

/** Stops the tower's threads (GEMM and steps); the next call starts them again. */
function stopThreads(tower: Tower): void {
  const steps = tower.steps;
  tower.steps = undefined;
  void steps?.close();
  void tower.arena.close();
}

const towers = new WeakMap<Map<string, FloatTensor>, Tower>();

/**
 * Runs `use` on the kept tower of these weights (or a new one); the tower's threads stop
 * IDLE_STOP_MS after the last call ends.
 */
export function withTower<T>(
  weights: Map<string, FloatTensor>,
  config: ClipConfig,
  threads: number,
  use: (tower: Tower) => T,
): T {
  const tower = towerFor(weights, config, threads);
  clearTimeout(tower.idleTimer);
  try {
    return use(tower);
  } finally {
    tower.idleTimer = setTimeout(() => stopThreads(tower), IDLE_STOP_MS);
    tower.idleTimer.unref();
  }
}

/** The kept tower of these weights, or a new one (when the tensors or settings changed). */
function towerFor(weights: Map<string, FloatTensor>, config: ClipConfig, threads: number): Tower {
  const kept = towers.get(weights);
  const names = towerTensorNames(config);
  if (
    kept &&
    kept.config === config &&
    kept.threads === threads &&
    names.every((name, i) => weights.get(name) === kept.sources[i])
  )
    return kept;
  if (kept) {
    clearTimeout(kept.idleTimer);
    stopThreads(kept);
  }
  const tower = buildTower(weights, config, threads, names);
  towers.set(weights, tower);
  return tower;
}

const BLOCK_TENSORS = [
  "ln_1.weight",
  "ln_1.bias",
  "attn.in_proj_weight",
  "attn.in_proj_bias",
  "attn.out_proj.weight",
  "attn.out_proj.bias",
  "ln_2.weight",
  "ln_2.bias",
  "mlp.c_fc.weight",
  "mlp.c_fc.bias",
  "mlp.c_proj.weight",
  "mlp.c_proj.bias",
] as const;

function towerTensorNames(config: ClipConfig): string[] {
  const names = [
    "token_embedding.weight",
    "positional_embedding",
    "text_projection",
    "ln_final.weight",
    "ln_final.bias",
  ];
  for (let l = 0; l < config.transformerLayers; l++)
    for (const name of BLOCK_TENSORS) names.push(`transformer.resblocks.${l}.${name}`);
  return names;
}

function buildTower(
  weights: Map<string, FloatTensor>,
  config: ClipConfig,
  threads: number,
  names: string[],
): Tower {
  const L = config.contextLength;
  const W = config.transformerWidth;
  const E = config.embedDim;
  const numel: Record<string, number> = {
    "token_embedding.weight": config.vocabSize * W,
    positional_embedding: L * W,
    text_projection: W * E,
    "ln_final.weight": W,
    "ln_final.bias": W,
    "ln_1.weight": W,
    "ln_1.bias": W,
    "attn.in_proj_weight": 3 * W * W,
    "attn.in_proj_bias": 3 * W,
    "attn.out_proj.weight": W * W,
    "attn.out_proj.bias": W,
    "ln_2.weight": W,
    "ln_2.bias": W,
    "mlp.c_fc.weight": 4 * W * W,
    "mlp.c_fc.bias": 4 * W,
    "mlp.c_proj.weight": 4 * W * W,
    "mlp.c_proj.bias": W,
  };
  const sources = names.map((name) => {
    const t = weights.get(name);
    if (!t)
      throw new UnmaskError("TENSOR_NOT_FOUND", `encodeTextCpu: the model has no tensor ${name}`, {
        subject: name,
      });
    const expected = numel[name.replace(/^transformer\.resblocks\.\d+\./, "")];
    if (t.data.length !== expected)
      throw new UnmaskError(
        "BAD_SHAPE",
        `encodeTextCpu: tensor ${name} has shape [${t.shape}], expected ${expected} values`,
        { subject: name },
      );
    return t;
  });
  const arena = new Arena(16 << 20, threads);
  const copy = (i: number) => arena.copyOf(sources[i].data, names[i]);
  const blocks: BlockWeights[] = [];
  for (let l = 0; l < config.transformerLayers; l++) {
    const b = 5 + l * BLOCK_TENSORS.length;
    blocks.push({
      ln1Weight: copy(b),
      ln1Bias: copy(b + 1),
      inProjWeight: copy(b + 2),
      inProjBias: copy(b + 3),
      outProjWeight: copy(b + 4),
      outProjBias: copy(b + 5),
      ln2Weight: copy(b + 6),
      ln2Bias: copy(b + 7),
      fcWeight: copy(b + 8),
      fcBias: copy(b + 9),
      projWeight: copy(b + 10),
      projBias: copy(b + 11),
    });
  }
  const maxRows = Math.max(CHUNK_ROWS, L);
  // batch x tokens = maxRows rows; attention probabilities [batch, heads, T, T] <= maxRows heads L
  const acts = {
    ...allocBlockActivations(
      arena,
      { batch: maxRows, tokens: 1, width: W, heads: 1, mlp: 4 * W },
      "text activations",
    ),
    probs: arena.floats(maxRows * config.transformerHeads * L, "text attention probabilities"),
  };
  const rowsOf = (width: number, what: string) => arena.floats(maxRows * width, what);
  return {
    sources,
    config,
    threads,
    arena,
    tokenEmbedding: sources[0].data,
    positional: sources[1].data,
    projection: copy(2),
    lnFinalWeight: copy(3),
    lnFinalBias: copy(4),
    blocks,
    maxRows,
    acts,
    xs: [rowsOf(W, "text stream"), rowsOf(W, "text stream")],
    projected: rowsOf(E, "projected rows"),
    stepScratch: [],
    prefixQkv: blocks.map((_, l) => arena.floats(L * 3 * W, `text prefix qkv ${l}`)),
  };
}
