/**
 * The cuda engine against the cpu engine over several steps on the tiny-vit-p8 fixture model:
 * both start from the fixture's scores and take the same batches (the fixture's six images and
 * labels) with their own Philox draws (the same stream: the kernel's draws equal the host's), at
 * a learning rate that moves scores across the threshold within a few steps. Reports how many
 * mask bits agree after every step and how far the losses drift apart. Used by the GPU test
 * (cuda-engine.gpu.test.ts) and the device bundle (`main.mjs cpuparity <fixtureDir>`).
 */
import type { Engine, EngineFactory, EngineState, FloatTensor } from "../../src/engine.js";
import { createCpuEngine } from "../../src/engines/cpu/cpu-engine.js";
import { createCudaEngine } from "../../src/engines/cuda/engine.js";
import { loadTinyFixture } from "./fixture.js";
import { benchPrecision } from "./with-env.js";

export interface CpuParity {
  steps: number;
  maskBits: number;
  /** Fraction of mask bits equal between the engines after each step. */
  agreement: number[];
  /** Bits switched off by the cpu engine after the last step (so that the comparison means something). */
  cpuOff: number;
  /** Largest relative difference of the ce / kl losses over the steps. */
  lossCe: number;
  lossKl: number;
}

/** `other` is the engine compared with the cpu engine (the cuda engine; another for a dry run of this check). */
export async function cpuParity(
  dir: string,
  steps = 20,
  lr = 1e-3,
  other: EngineFactory = createCudaEngine,
): Promise<CpuParity> {
  const fx = loadTinyFixture(dir);
  const get = (name: string) => (fx.step.get(name) as FloatTensor).data;
  const options = { maxBatch: 6, hyper: fx.hyper, seed: 1234, ...benchPrecision() };
  const init: EngineState = { scores: new Map(), adamM: new Map(), adamV: new Map() };
  for (const name of fx.model.maskedTensors) {
    init.scores.set(name, get(`${name}.scores`));
    init.adamM.set(name, new Float32Array(get(`${name}.scores`).length));
    init.adamV.set(name, new Float32Array(get(`${name}.scores`).length));
  }
  const batch = { labels: Int32Array.from(get("labels")), pixels: get("images") };
  const engines: Engine[] = [await createCpuEngine(fx.model, options), await other(fx.model, options)];
  try {
    for (const e of engines) await e.setState(init);
    const threshold = fx.hyper.threshold;
    const result: CpuParity = { steps, maskBits: 0, agreement: [], cpuOff: 0, lossCe: 0, lossKl: 0 };
    const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
    for (let step = 0; step < steps; step++) {
      const cpu = await engines[0].step(batch, { lr, step });
      const cuda = await engines[1].step(batch, { lr, step });
      result.lossCe = Math.max(result.lossCe, relative(cuda.lossCe, cpu.lossCe));
      result.lossKl = Math.max(result.lossKl, relative(cuda.lossKl, cpu.lossKl));
      const a = await engines[0].getState();
      const b = await engines[1].getState();
      let same = 0;
      let total = 0;
      let off = 0;
      for (const name of fx.model.maskedTensors) {
        const sa = a.scores.get(name) as Float32Array;
        const sb = b.scores.get(name) as Float32Array;
        for (let i = 0; i < sa.length; i++) {
          if (sa[i] > threshold === sb[i] > threshold) same++;
          if (!(sa[i] > threshold)) off++;
        }
        total += sa.length;
      }
      result.maskBits = total;
      result.cpuOff = off;
      result.agreement.push(same / total);
    }
    return result;
  } finally {
    for (const e of engines) await e.dispose();
  }
}
