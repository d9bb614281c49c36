/**
 * The backward pass against finite differences, on a tiny random model whose masked set covers
 * every kind the engine supports (patch embedding, attention in/out, MLP fc/proj), with some mask
 * bits off so the student differs from the teacher and the KL gradient is not zero.
 *
 * With regWeight 0, the step's debug gradients are a = dW'_ce * W and b = dW'_kl * W. Scaling the
 * kept entries of one weight tensor by (1 + h r_i) changes the losses by h * sum_kept a_i r_i
 * (resp. b_i r_i) to first order; the central difference of the losses, computed in float64 from
 * the engine's float32 logits (teacher logits held fixed), must agree.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_HYPER, type EngineModel, type FloatTensor } from "../../engine.js";
import { logitLosses } from "../../rmt/losses.js";
import { createCpuEngine } from "./cpu-engine.js";
import { randomImages, randomVitModel } from "./random-model.js";

const hyper = { ...DEFAULT_HYPER, regWeight: 0 };
const batch = 3;

function base(): EngineModel {
  return randomVitModel({
    resolution: 8,
    patch: 4,
    width: 16,
    layers: 2,
    heads: 2,
    embed: 8,
    classes: 4,
    seed: 5,
    maskedTensors: [
      "visual.conv1.weight",
      "visual.transformer.resblocks.0.attn.in_proj_weight",
      "visual.transformer.resblocks.0.mlp.c_fc.weight",
      "visual.transformer.resblocks.1.attn.out_proj.weight",
      "visual.transformer.resblocks.1.mlp.c_proj.weight",
    ],
  });
}

/** Scores: 1 in 5 entries below the threshold (off), the rest above. */
function scoresFor(model: EngineModel) {
  const scores = new Map<string, Float32Array>();
  for (const name of model.maskedTensors) {
    const n = model.weights.get(name)!.data.length;
    scores.set(
      name,
      Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 5 === 0 ? 0.001 : 0.01)),
    );
  }
  const zeros = () => new Map([...scores].map(([k, v]) => [k, new Float32Array(v.length)]));
  return { scores, adamM: zeros(), adamV: zeros() };
}

describe("cpu engine backward against finite differences", () => {
  it("matches the directional derivative of ce and kl for every masked tensor", async () => {
    const model = base();
    const images = randomImages(batch, 8, 9);
    const labels = Int32Array.from([0, 2, 3]);
    const state = scoresFor(model);
    const engine = await createCpuEngine(model, { maxBatch: batch, hyper, seed: 0 });
    await engine.setState(state);
    const teacher = await engine.forward(images, batch, { teacher: true });
    const result = await engine.step({ labels, pixels: images }, { lr: 0, step: 0, debug: true });
    await engine.dispose();

    const losses = async (weights: Map<string, FloatTensor>) => {
      const e = await createCpuEngine({ ...model, weights }, { maxBatch: batch, hyper, seed: 0 });
      await e.setState(state);
      const student = await e.forward(images, batch);
      await e.dispose();
      const g = new Float32Array(batch * 4);
      return logitLosses(
        {
          studentLogits: student,
          teacherLogits: teacher,
          labels,
          batch,
          classes: 4,
          temperature: 1,
          fuseAlpha: 1,
        },
        g,
        new Float32Array(batch * 4),
      );
    };

    const h = 1e-2;
    for (const [t, name] of model.maskedTensors.entries()) {
      const w = model.weights.get(name)!;
      const s = state.scores.get(name)!;
      const r = Float32Array.from({ length: w.data.length }, (_, i) => Math.sin(i * 12.9898 + t * 78.233));
      const scaled = (sign: number) => {
        const data = Float32Array.from(w.data, (v, i) => v * (1 + sign * h * r[i]));
        return new Map(model.weights).set(name, { shape: w.shape, data });
      };
      const plus = await losses(scaled(1));
      const minus = await losses(scaled(-1));
      const { ce: a, kl: b } = result.debug!.grads.get(name)!;
      let predictedCe = 0;
      let predictedKl = 0;
      let scaleCe = 0;
      let scaleKl = 0;
      for (let i = 0; i < r.length; i++) {
        if (!(s[i] > hyper.threshold)) continue; // a masked-off weight does not reach the student
        predictedCe += a[i] * r[i];
        predictedKl += b[i] * r[i];
        scaleCe += Math.abs(a[i] * r[i]);
        scaleKl += Math.abs(b[i] * r[i]);
      }
      const fdCe = (plus.lossCe - minus.lossCe) / (2 * h);
      const fdKl = (plus.lossKl - minus.lossKl) / (2 * h);
      // tolerance: 1% of the derivative (O(h^2) truncation) plus float32 rounding of the logits,
      // which grows with the sum of |terms|; measured errors are 1e-5..3e-3 of the derivative
      expect(Math.abs(fdCe - predictedCe), `${name} ce: fd ${fdCe} vs ${predictedCe}`).toBeLessThan(
        1e-2 * Math.abs(predictedCe) + 2e-5 * scaleCe,
      );
      expect(Math.abs(fdKl - predictedKl), `${name} kl: fd ${fdKl} vs ${predictedKl}`).toBeLessThan(
        1e-2 * Math.abs(predictedKl) + 2e-5 * scaleKl,
      );
      expect(scaleKl).toBeGreaterThan(0);
    }
  });
});

describe("cpu engine at step 0", () => {
  it("has a KL gradient of exactly zero while every score is above the threshold", async () => {
    const model = base();
    const engine = await createCpuEngine(model, { maxBatch: batch, hyper: DEFAULT_HYPER, seed: 3 });
    const images = randomImages(batch, 8, 4);
    const result = await engine.step(
      { labels: Int32Array.from([1, 1, 0]), pixels: images },
      { lr: 8e-5, step: 0, debug: true },
    );
    expect([...result.debug!.studentLogits]).toEqual([...result.debug!.teacherLogits]);
    for (const [name, g] of result.debug!.grads) {
      expect(
        g.kl.every((v) => v === 0),
        name,
      ).toBe(true);
      expect(
        g.ce.some((v) => v !== 0),
        name,
      ).toBe(true);
    }
    await engine.dispose();
  });
});
