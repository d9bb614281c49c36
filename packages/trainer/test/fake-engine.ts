/**
 * Test helper: a deterministic stand-in engine with the real interface, for exercising the
 * training loop, checkpoints and resume without the numerics. Its "model" scores each class by a
 * masked dot product of the crop's mean colour with the first scores of the first masked tensor,
 * and each step moves the scores by a batch-dependent amount (so every batch leaves a trace).
 */
import type { Engine, EngineFactory, EngineState, ImageCache } from "../src/engine.js";

export function fakeEngineFactory(log: { steps: number[] } = { steps: [] }): EngineFactory {
  return async (model, options) => {
    const classes = model.textFeatures.shape[0];
    const scores = new Map<string, Float32Array>();
    const adamM = new Map<string, Float32Array>();
    const adamV = new Map<string, Float32Array>();
    for (const name of model.maskedTensors) {
      const n = (model.weights.get(name)?.data.length ?? 0) | 0;
      scores.set(name, new Float32Array(n).fill(options.hyper.scoreInit));
      adamM.set(name, new Float32Array(n));
      adamV.set(name, new Float32Array(n));
    }
    let cache: ImageCache | null = null;
    const first = model.maskedTensors[0];
    const engine: Engine = {
      name: "cpu",
      async setImageCache(c) {
        cache = c;
      },
      async step(batch, { lr, step }) {
        log.steps.push(step);
        const crops = batch.crops;
        if (!crops || !cache) throw new Error("fake engine needs crops and a cache");
        const s = scores.get(first) as Float32Array;
        const m = adamM.get(first) as Float32Array;
        let correct = 0;
        for (let i = 0; i < crops.indices.length; i++) {
          const idx = crops.indices[i];
          const base = idx * cache.width * cache.height * 3;
          const signal = (cache.pixels[base] / 255 - 0.5) * (crops.boxes[i * 4] + crops.flips[i]);
          const k = (idx * 7 + batch.labels[i] * 13 + i) % s.length;
          s[k] -= lr * 40 * (1 + signal);
          m[k] += signal;
          if ((idx + step) % classes === batch.labels[i]) correct++;
        }
        const lossCe = 2 / (1 + step) + s[0];
        return { lossCe, lossKl: 0.01 * lossCe, lossReg: 1e-4, correct };
      },
      async forward(pixels, count, opts) {
        const out = new Float32Array(count * classes);
        const s = scores.get(first) as Float32Array;
        const plane = pixels.length / count;
        for (let i = 0; i < count; i++)
          for (let c = 0; c < classes; c++) {
            const keep = opts?.teacher ? 1 : s[c] > options.hyper.threshold ? 1 : 0.5;
            out[i * classes + c] = pixels[i * plane + c] * keep + c * 1e-3;
          }
        return out;
      },
      async getState(): Promise<EngineState> {
        const copy = (m: Map<string, Float32Array>) => new Map([...m].map(([k, v]) => [k, v.slice()]));
        return { scores: copy(scores), adamM: copy(adamM), adamV: copy(adamV) };
      },
      async setState(state) {
        for (const [k, v] of state.scores) scores.set(k, v.slice());
        for (const [k, v] of state.adamM) adamM.set(k, v.slice());
        for (const [k, v] of state.adamV) adamV.set(k, v.slice());
      },
      async dispose() {},
    };
    return engine;
  };
}

/** A stand-in text tower: a fixed pseudo-random embedding per prompt (hash of its tokens). */
export function fakeTextEncoder(embedDim: number) {
  return () => async (tokens: Int32Array, count: number) => {
    const out = new Float32Array(count * embedDim);
    const context = tokens.length / count;
    for (let i = 0; i < count; i++) {
      let h = 2166136261;
      for (let t = 0; t < context; t++) h = Math.imul(h ^ tokens[i * context + t], 16777619);
      for (let d = 0; d < embedDim; d++) {
        h = Math.imul(h ^ (h >>> 15), 2246822507);
        out[i * embedDim + d] = ((h >>> 0) / 2 ** 32) * 2 - 1;
      }
    }
    return out;
  };
}
