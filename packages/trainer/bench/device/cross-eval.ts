/**
 * The masked accuracy of given masks (full-run.ts's .mask files) under one engine's evaluation,
 * through train()'s own pipeline (prompts, test transform, evaluation batches): one epoch whose
 * steps change nothing, on an engine whose scores are the mask (+1 kept, -1 dropped). Run with
 * both engines on both engines' masks, it tells whether their accuracies part in training or in
 * evaluation:
 *   node cross-eval.mjs <cpu|cuda> <model dir> <fashion.bin> <seed>:<mask file>...
 * Prints one JSON line per mask.
 */
import { readFileSync } from "node:fs";
import { unpackBits } from "@unmask/mask-format";
import type { Engine, EngineFactory, EngineModel, EngineState } from "../../src/engine.js";
import { engineFactory } from "../../src/engine-factory.js";
import { train } from "../../src/train.js";
import { loadFashion } from "./fashion-data.js";

/** Scores of a mask file: the masked tensors' bits, each packed to whole bytes, in the model's order. */
function maskState(model: EngineModel, bytes: Uint8Array, file: string): EngineState {
  const state: EngineState = { scores: new Map(), adamM: new Map(), adamV: new Map() };
  let offset = 0;
  for (const name of model.maskedTensors) {
    const numel = model.weights.get(name)?.data.length ?? 0;
    const keep = unpackBits(bytes.subarray(offset, offset + Math.ceil(numel / 8)), numel);
    offset += Math.ceil(numel / 8);
    state.scores.set(
      name,
      Float32Array.from(keep, (k) => (k ? 1 : -1)),
    );
    state.adamM.set(name, new Float32Array(numel));
    state.adamV.set(name, new Float32Array(numel));
  }
  if (offset !== bytes.length)
    throw new Error(`${file}: ${bytes.length} bytes, the model's masks take ${offset}`);
  return state;
}

/** The engine of `name` holding the mask, whose steps do nothing. */
function frozenMask(name: "cpu" | "cuda", bytes: Uint8Array, file: string): EngineFactory {
  return async (model, options) => {
    const engine: Engine = await (await engineFactory(name))(model, options);
    await engine.setState(maskState(model, bytes, file));
    return {
      name: engine.name,
      setImageCache: (cache) => engine.setImageCache(cache),
      step: async () => ({ lossCe: 0, lossKl: 0, lossReg: 0, correct: 0 }),
      forward: (pixels, count, o) => engine.forward(pixels, count, o),
      getState: (into) => engine.getState(into),
      setState: (state) => engine.setState(state),
      dispose: () => engine.dispose(),
    };
  };
}

const [engine, modelDir, dataPath, ...masks] = process.argv.slice(2);
const fashion = loadFashion(dataPath);
for (const spec of masks) {
  const [seed, file] = spec.split(":");
  const bytes = new Uint8Array(readFileSync(file));
  const result = await train({
    model: modelDir,
    data: fashion.list(Number(seed)),
    testData: fashion.test,
    seed: Number(seed),
    engine: engine as "cpu" | "cuda",
    engineFactory: frozenMask(engine as "cpu" | "cuda", bytes, file),
    preset: "recipe",
    epochs: 1,
    evaluateZeroShot: false,
    out: null,
  });
  const r = result.report;
  console.log(
    JSON.stringify({
      run: "cross_eval",
      engine,
      mask: file,
      seed: Number(seed),
      masked: r.accuracy.masked,
      maskedFraction: r.maskedFraction,
    }),
  );
}
