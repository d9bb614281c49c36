/** The cpu engine refuses bad input with typed errors naming the field, before computing anything. */
import { isUnmaskError } from "@unmask/clip";
import { describe, expect, it } from "vitest";
import { DEFAULT_HYPER } from "../../engine.js";
import { createCpuEngine } from "./cpu-engine.js";
import { randomImages, randomVitModel } from "./random-model.js";

const small = () =>
  randomVitModel({ resolution: 8, patch: 4, width: 16, layers: 1, heads: 2, embed: 8, classes: 3 });
const options = { maxBatch: 2, hyper: DEFAULT_HYPER, seed: 0, threads: 1 };

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isUnmaskError(error)) return `${error.code}: ${error.message}`;
    throw error;
  }
  return "no error";
}

describe("cpu engine input checks", () => {
  it("rejects a model it cannot run", async () => {
    const model = small();
    expect(await code(createCpuEngine({ ...model, maskedTensors: ["visual.proj"] }, options))).toMatch(
      /^UNSUPPORTED_MASKED_TENSOR: .*visual\.proj/,
    );
    expect(
      await code(
        createCpuEngine(
          { ...model, maskedTensors: ["visual.transformer.resblocks.7.attn.in_proj_weight"] },
          options,
        ),
      ),
    ).toMatch(/^UNSUPPORTED_MASKED_TENSOR/);
    const weights = new Map(model.weights);
    weights.delete("visual.ln_post.bias");
    expect(await code(createCpuEngine({ ...model, weights }, options))).toMatch(
      /^TENSOR_NOT_FOUND: .*visual\.ln_post\.bias/,
    );
    weights.set("visual.ln_post.bias", { shape: [15], data: new Float32Array(15) });
    expect(await code(createCpuEngine({ ...model, weights }, options))).toMatch(
      /^BAD_SHAPE: .*visual\.ln_post\.bias/,
    );
    expect(
      await code(
        createCpuEngine({ ...model, textFeatures: { shape: [3, 7], data: new Float32Array(21) } }, options),
      ),
    ).toMatch(/^BAD_SHAPE: .*textFeatures/);
    expect(await code(createCpuEngine(model, { ...options, maxBatch: 0 }))).toMatch(
      /^BAD_OPTION: .*maxBatch/,
    );
  });

  it("rejects bad batches, states and draws, and use after dispose", async () => {
    const engine = await createCpuEngine(small(), options);
    const pixels = randomImages(2, 8);
    const labels = Int32Array.of(0, 2);
    const step = { lr: 1e-3, step: 0 };
    expect(await code(engine.step({ labels: Int32Array.of(0, 1, 2), pixels }, step))).toMatch(
      /^BAD_BATCH: .*1\.\.2/,
    );
    expect(await code(engine.step({ labels: Int32Array.of(0, 3), pixels }, step))).toMatch(
      /^BAD_BATCH: .*label 3/,
    );
    expect(await code(engine.step({ labels, pixels: pixels.subarray(1) }, step))).toMatch(
      /^BAD_SHAPE: .*batch\.pixels/,
    );
    expect(await code(engine.step({ labels }, step))).toMatch(/^BAD_BATCH: .*exactly one/);
    const crops = {
      indices: Int32Array.of(0, 0),
      boxes: new Float32Array(8).fill(0.5),
      flips: new Uint8Array(2),
    };
    expect(await code(engine.step({ labels, crops }, step))).toMatch(/^NO_IMAGE_CACHE/);
    expect(
      await code(engine.setImageCache({ count: 1, width: 4, height: 4, pixels: new Uint8Array(47) })),
    ).toMatch(/^BAD_SHAPE: .*cache\.pixels/);
    await engine.setImageCache({ count: 1, width: 4, height: 4, pixels: new Uint8Array(48) });
    expect(
      await code(engine.step({ labels, crops: { ...crops, indices: Int32Array.of(0, 1) } }, step)),
    ).toMatch(/^BAD_BATCH: .*crop index 1/);
    const name = "visual.conv1.weight";
    expect(
      await code(
        engine.step({ labels, pixels }, { ...step, uniforms: new Map([[name, new Float32Array(3)]]) }),
      ),
    ).toMatch(/^BAD_OPTION: .*visual\.conv1\.weight/);
    const state = await engine.getState();
    state.adamV.set(name, new Float32Array(5));
    expect(await code(engine.setState(state))).toMatch(
      /^BAD_STATE: .*state\.adamV for visual\.conv1\.weight/,
    );
    expect(await code(engine.forward(pixels, 3))).toMatch(/^BAD_SHAPE: .*pixels/);
    await engine.dispose();
    expect(await code(engine.step({ labels, pixels }, step))).toMatch(/^ENGINE_DISPOSED/);
  });
});
