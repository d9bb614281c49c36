/**
 * The cpu engine against the float64 PyTorch reference of one R-AMT step
 * (fixtures/tiny-vit-p8/rmt_step.safetensors, made by reference/make_fixtures.py).
 */
import { readFileSync } from "node:fs";
import { SafetensorsFile } from "@unmask/clip";
import { fixturePath } from "@unmask/fixtures";
import { beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_HYPER, type EngineModel, type StepResult } from "../../engine.js";
import { gdrKeepProbability } from "../../rmt/gradient-dropout.js";
import { createCpuEngine } from "./cpu-engine.js";
import { readHfWeightsFloat32 } from "./hf-weights.js";

interface Meta {
  rmt: { masked: string[]; batch: number; classes: number; adam: { lr: number }; reg_weight: number };
}

/** max |x - y| / max |y|: the error relative to the tensor's scale. */
function relativeError(x: Float32Array, y: Float32Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < y.length; i++) {
    err = Math.max(err, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return err / scale;
}

describe("cpu engine: one R-AMT step against the float64 fixture", () => {
  const meta = JSON.parse(readFileSync(fixturePath("tiny-vit-p8/meta.json"), "utf8")) as Meta;
  const ref = new Map<string, Float32Array>();
  let labels: Int32Array;
  let result: StepResult;

  beforeAll(async () => {
    const file = await SafetensorsFile.open(fixturePath("tiny-vit-p8/rmt_step.safetensors"));
    for (const [name, entry] of file.tensors)
      if (entry.dtype !== "I32") ref.set(name, await file.readFloat32(name));
    const labelBytes = await file.readBytes("labels");
    labels = new Int32Array(labelBytes.buffer, labelBytes.byteOffset, labelBytes.byteLength / 4);
    await file.close();
    const hf = await readHfWeightsFloat32(fixturePath("tiny-vit-p8/hf/model.safetensors"));
    const model: EngineModel = {
      config: hf.config,
      weights: new Map([...hf.weights].filter(([name]) => name.startsWith("visual."))),
      maskedTensors: meta.rmt.masked,
      textFeatures: { shape: [meta.rmt.classes, hf.config.embedDim], data: ref.get("text_features")! },
      logitScale: hf.logitScale,
    };
    const engine = await createCpuEngine(model, { maxBatch: meta.rmt.batch, hyper: DEFAULT_HYPER, seed: 1 });
    const zeros = (name: string) => new Float32Array(ref.get(`${name}.scores`)!.length);
    await engine.setState({
      scores: new Map(meta.rmt.masked.map((n) => [n, ref.get(`${n}.scores`)!])),
      adamM: new Map(meta.rmt.masked.map((n) => [n, zeros(n)])),
      adamV: new Map(meta.rmt.masked.map((n) => [n, zeros(n)])),
    });
    result = await engine.step(
      { labels, pixels: ref.get("images")! },
      {
        lr: meta.rmt.adam.lr,
        step: 0,
        uniforms: new Map(meta.rmt.masked.map((n) => [n, ref.get(`${n}.uniform`)!])),
        debug: true,
      },
    );
    const state = await engine.getState();
    for (const n of meta.rmt.masked) ref.set(`${n}.ours_after_adam`, state.scores.get(n)!);
    await engine.dispose();
  });

  it("student and teacher logits within 1e-4 relative", () => {
    expect(relativeError(result.debug!.studentLogits, ref.get("student_logits")!)).toBeLessThan(1e-4);
    expect(relativeError(result.debug!.teacherLogits, ref.get("teacher_logits")!)).toBeLessThan(1e-4);
  });

  it("losses within 1e-5 relative", () => {
    const rel = (x: number, y: number) => Math.abs(x - y) / Math.abs(y);
    expect(rel(result.lossCe, ref.get("loss_ce")![0])).toBeLessThan(1e-5);
    expect(rel(result.lossKl, ref.get("loss_kl")![0])).toBeLessThan(1e-5);
    // the fixture stores the unweighted sum of norms; the engine reports regWeight times it
    expect(rel(result.lossReg, meta.rmt.reg_weight * ref.get("loss_reg")![0])).toBeLessThan(1e-5);
  });

  it("grad_ce and grad_kl within 1e-3 of each tensor's largest magnitude", () => {
    for (const name of meta.rmt.masked) {
      const g = result.debug!.grads.get(name)!;
      expect(relativeError(g.ce, ref.get(`${name}.grad_ce`)!), `${name} grad_ce`).toBeLessThan(1e-3);
      expect(relativeError(g.kl, ref.get(`${name}.grad_kl`)!), `${name} grad_kl`).toBeLessThan(1e-3);
    }
  });

  /**
   * Gradient dropout keeps a_i when P(a_i, b_i) > u_i. Our a, b differ from the float64 reference
   * by float32 rounding (the test above), so where P lies within that rounding of u the keep
   * decision is a coin toss between two correct implementations: a tie. P moves by at most
   * 2 (|da| + |db|) / (|a| + |b|) when a and b move by da, db, and jumps from about 0 to about 1
   * where a changes sign (sign(a) is discontinuous), so an element is a tie when its a has
   * opposite signs here and in the reference, or |P_ref - u| is within that bound. Everywhere
   * else the decisions must be identical, and the ties must be rare.
   */
  function ties(name: string): { tie: Uint8Array; count: number } {
    const g = result.debug!.grads.get(name)!;
    const a = ref.get(`${name}.grad_ce`)!;
    const b = ref.get(`${name}.grad_kl`)!;
    const u = ref.get(`${name}.uniform`)!;
    const tie = new Uint8Array(a.length);
    let count = 0;
    for (let i = 0; i < a.length; i++) {
      const moved =
        Math.abs(g.ce[i] - a[i]) + Math.abs(g.kl[i] - b[i]) + 1e-7 * (Math.abs(a[i]) + Math.abs(b[i]));
      const margin = (2 * moved) / (Math.abs(a[i]) + Math.abs(b[i]) + 1e-8);
      if (
        Math.sign(g.ce[i]) !== Math.sign(a[i]) ||
        Math.abs(gdrKeepProbability(a[i], b[i]) - u[i]) <= margin
      ) {
        tie[i] = 1;
        count++;
      }
    }
    return { tie, count };
  }

  it("grad_gdr keeps exactly the reference's elements except at ties", () => {
    for (const name of meta.rmt.masked) {
      const g = result.debug!.grads.get(name)!;
      const refGdr = ref.get(`${name}.grad_gdr`)!;
      const refCe = ref.get(`${name}.grad_ce`)!;
      const { tie, count } = ties(name);
      let differ = 0;
      let kept = 0;
      let notA = 0;
      for (let i = 0; i < refGdr.length; i++) {
        const keptRef = refGdr[i] !== 0 || refCe[i] === 0;
        const keptOurs = g.gdr[i] !== 0 || g.ce[i] === 0;
        if (keptOurs) kept++;
        if (!tie[i] && keptRef !== keptOurs) differ++;
        // the kept value is a itself (lambda = 1: dropped values are 0)
        if (g.gdr[i] !== g.ce[i] && g.gdr[i] !== 0) notA++;
      }
      expect(notA, `${name}: values that are neither a nor 0`).toBe(0);
      expect(differ, `${name}: keep decisions that differ away from ties`).toBe(0);
      expect(count / refGdr.length, `${name}: fraction of ties`).toBeLessThan(1e-3);
      // both decisions occur: the test exercises dropping as well as keeping
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(refGdr.length);
    }
  });

  /**
   * The first Adam step moves a score by lr g / (|g| + eps) (bias-corrected moments of one step).
   * Where |g| is near eps = 1e-8 that ratio is steep: a gradient error dg (float32 rounding, seen
   * above) moves the score by lr eps |dg| / (|g| + eps)^2, which can exceed 1e-6 for a handful of
   * elements whose gradient is ~1e-8. Those are excluded with the ties, and must be rare.
   */
  it("scores after one Adam step within 1e-6 absolute (ties and eps-dominated gradients excluded)", () => {
    const { lr } = meta.rmt.adam;
    const eps = DEFAULT_HYPER.adamEps;
    for (const name of meta.rmt.masked) {
      const ours = ref.get(`${name}.ours_after_adam`)!;
      const expected = ref.get(`${name}.scores_after_adam`)!;
      const g = result.debug!.grads.get(name)!.gdr;
      const refG = ref.get(`${name}.grad_gdr`)!;
      const { tie } = ties(name);
      let worst = 0;
      let steep = 0;
      for (let i = 0; i < ours.length; i++) {
        if (tie[i]) continue;
        if ((lr * eps * Math.abs(g[i] - refG[i])) / (Math.abs(refG[i]) + eps) ** 2 > 5e-7) {
          steep++;
          continue;
        }
        worst = Math.max(worst, Math.abs(ours[i] - expected[i]));
      }
      expect(worst, name).toBeLessThan(1e-6);
      expect(steep / ours.length, `${name}: fraction of eps-dominated elements`).toBeLessThan(1e-4);
    }
  });
});
