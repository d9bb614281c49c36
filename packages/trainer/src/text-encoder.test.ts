/**
 * The cpu text tower and the cpu engine's image tower against the float64 reference outputs of
 * fixtures/tiny-vit-p8/expected.safetensors (OpenAI's encode_text / encode_image on the fp16-rounded
 * weights).
 */
import { SafetensorsFile } from "@unmask/clip";
import { fixturePath } from "@unmask/fixtures";
import { describe, expect, it } from "vitest";
import { DEFAULT_HYPER } from "./engine.js";
import { createCpuEngine } from "./engines/cpu/cpu-engine.js";
import { readHfWeightsFloat32 } from "./engines/cpu/hf-weights.js";
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
