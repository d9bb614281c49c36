/**
 * A few R-AMT steps of the tiny fixture model on random data with the cpu engine (a raised
 * learning rate so scores cross the threshold within a few steps): the training loss falls and
 * mask bits switch off. The end-to-end version through train() lives in src/learning.test.ts.
 */
import { fixturePath } from "@unmask/fixtures";
import { describe, expect, it } from "vitest";
import { DEFAULT_HYPER } from "../../engine.js";
import { philoxUniforms } from "../../random/philox.js";
import { augmentCrops } from "./augment.js";
import { createCpuEngine } from "./cpu-engine.js";
import { readHfWeightsFloat32 } from "./hf-weights.js";
import { randomImages, randomVitModel } from "./random-model.js";

describe("cpu engine training", () => {
  it("lowers the loss and switches mask bits off on the tiny fixture model", async () => {
    const hf = await readHfWeightsFloat32(fixturePath("tiny-vit-p8/hf/model.safetensors"));
    const classes = 4;
    const text = randomVitModel({
      resolution: 8,
      patch: 4,
      width: 16,
      layers: 1,
      embed: 64,
      classes,
      seed: 3,
    }).textFeatures;
    const masked = [
      "visual.conv1.weight",
      "visual.transformer.resblocks.0.attn.in_proj_weight",
      "visual.transformer.resblocks.1.attn.out_proj.weight",
    ];
    const engine = await createCpuEngine(
      {
        config: hf.config,
        weights: hf.weights,
        maskedTensors: masked,
        textFeatures: text,
        logitScale: hf.logitScale,
      },
      { maxBatch: 8, hyper: DEFAULT_HYPER, seed: 7 },
    );
    const images = randomImages(8, 32, 11);
    const labels = Int32Array.from([0, 1, 2, 3, 3, 2, 1, 0]);
    const losses: number[] = [];
    for (let step = 0; step < 16; step++) {
      const r = await engine.step({ labels, pixels: images }, { lr: 2e-3, step });
      losses.push(r.lossCe);
    }
    const state = await engine.getState();
    await engine.dispose();
    const first = (losses[0] + losses[1]) / 2;
    const last = (losses[14] + losses[15]) / 2;
    expect(last).toBeLessThan(0.7 * first);
    let off = 0;
    for (const s of state.scores.values()) for (const v of s) if (!(v > DEFAULT_HYPER.threshold)) off++;
    expect(off).toBeGreaterThan(0);
  });

  it("trains the same from a crops batch as from the pixels augmentCrops makes", async () => {
    const model = randomVitModel({
      resolution: 8,
      patch: 4,
      width: 16,
      layers: 1,
      embed: 8,
      classes: 3,
      seed: 2,
    });
    const cache = {
      count: 2,
      width: 11,
      height: 9,
      pixels: Uint8Array.from(philoxUniforms(1, 0, 0, 2 * 11 * 9 * 3), (u) => 255 * u),
    };
    const crops = {
      indices: Int32Array.of(1, 0),
      boxes: Float32Array.of(0.1, 0.2, 0.7, 0.6, 0, 0, 1, 1),
      flips: Uint8Array.of(1, 0),
    };
    const labels = Int32Array.of(2, 0);
    const run = async (batch: { crops?: typeof crops; pixels?: Float32Array }) => {
      const engine = await createCpuEngine(model, { maxBatch: 2, hyper: DEFAULT_HYPER, seed: 1 });
      await engine.setImageCache(cache);
      const r = await engine.step({ labels, ...batch }, { lr: 1e-3, step: 0 });
      const state = await engine.getState();
      await engine.dispose();
      return { r, state };
    };
    const pixels = new Float32Array(2 * 3 * 8 * 8);
    augmentCrops(pixels, cache, crops, 2, 8);
    const a = await run({ crops });
    const b = await run({ pixels });
    expect(a.r).toEqual(b.r);
    for (const [name, s] of a.state.scores) expect([...s]).toEqual([...b.state.scores.get(name)!]);
  });

  it("gives bit-identical steps on 1 and 3 threads", async () => {
    // batch 8 of 65 tokens: the MLP products (~70 MFLOP) take the threaded path
    const model = randomVitModel({
      resolution: 32,
      patch: 4,
      width: 64,
      layers: 2,
      heads: 1,
      embed: 16,
      classes: 5,
      seed: 4,
    });
    const images = randomImages(8, 32, 5);
    const labels = Int32Array.from([0, 1, 2, 3, 4, 0, 1, 2]);
    const run = async (threads: number) => {
      const engine = await createCpuEngine(model, { maxBatch: 8, hyper: DEFAULT_HYPER, seed: 2, threads });
      const results = [];
      for (let step = 0; step < 3; step++)
        results.push(await engine.step({ labels, pixels: images }, { lr: 1e-3, step }));
      const state = await engine.getState();
      await engine.dispose();
      return { results, state };
    };
    const one = await run(1);
    const three = await run(3);
    expect(three.results).toEqual(one.results);
    for (const [name, s] of one.state.scores) expect(three.state.scores.get(name)).toEqual(s);
  });
});
