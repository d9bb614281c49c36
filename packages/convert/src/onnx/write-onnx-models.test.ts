import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { cp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ClipConfig, SafetensorsFile } from "@unmask/clip";
import { fixturePath } from "@unmask/fixtures";
import { isUnmaskError } from "@unmask/mask-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeModel } from "./onnx-proto.js";
import { logitsPerImage, maxAbsError, relativeMaxError } from "./parity.js";
import type { AttentionKernel } from "./residual-block.js";
import {
  canonicalFromHf,
  type ExpectedOutputs,
  readExpectedOutputs,
  runTowersOn,
  type WeightDtype,
} from "./testing.js";
import { writeOnnxModels } from "./write-onnx-models.js";

async function logitScale(safetensorsPath: string): Promise<number> {
  const file = await SafetensorsFile.open(safetensorsPath);
  try {
    return (await file.readFloat32("logit_scale"))[0];
  } finally {
    await file.close();
  }
}

const root = mkdtempSync(join(tmpdir(), "unmask-onnx-test-"));
afterAll(() => rm(root, { recursive: true, force: true }));

let expected: ExpectedOutputs;
beforeAll(async () => {
  expected = await readExpectedOutputs(fixturePath("tiny-vit-p8/expected.safetensors"));
});

describe.each<[WeightDtype | undefined, AttentionKernel]>([
  [undefined, "matmul"],
  ["F32", "matmul"],
  [undefined, "mha"],
])("parity with PyTorch on tiny-vit-p8 (weights %s, attention %s)", (dtype, attention) => {
  const dir = join(root, `${dtype ?? "fp16"}-${attention}`);
  let config: ClipConfig;
  let safetensorsPath: string;

  beforeAll(async () => {
    ({ config, safetensorsPath } = await canonicalFromHf({
      hfSafetensorsPath: fixturePath("tiny-vit-p8/hf/model.safetensors"),
      modelDir: dir,
      dtype,
    }));
    await writeOnnxModels({ modelDir: dir, config, attention });
  });

  it("reproduces image_embeds, text_embeds (1e-4 relative) and logits_per_image (1e-3 absolute)", async () => {
    const out = await runTowersOn(dir, expected);
    expect(out.imageDims).toEqual([3, config.embedDim]);
    expect(out.textDims).toEqual([4, config.embedDim]);
    expect(relativeMaxError(out.imageEmbeds, expected.imageEmbeds)).toBeLessThan(1e-4);
    expect(relativeMaxError(out.textEmbeds, expected.textEmbeds)).toBeLessThan(1e-4);
    const logits = logitsPerImage(
      out.imageEmbeds,
      out.textEmbeds,
      config.embedDim,
      await logitScale(safetensorsPath),
    );
    expect(maxAbsError(logits, expected.logitsPerImage)).toBeLessThan(1e-3);
  });

  it("references model.safetensors by byte range instead of copying the weights", async () => {
    const weightsBytes = statSync(safetensorsPath).size;
    const file = await SafetensorsFile.open(safetensorsPath);
    try {
      for (const tower of ["vision", "text"]) {
        const bytes = readFileSync(join(dir, `${tower}.onnx`));
        expect(bytes.byteLength).toBeLessThan(weightsBytes / 20);
        const model = decodeModel(bytes);
        const externals = model.graph.initializer.filter((t) => t.dataLocation === 1);
        expect(externals.length).toBeGreaterThan(10);
        for (const t of externals) {
          const entry = file.entry(t.name); // initializers keep the canonical names
          const info = Object.fromEntries((t.externalData ?? []).map((e) => [e.key, e.value]));
          expect(info).toEqual({
            location: "model.safetensors",
            offset: String(entry.fileOffset),
            length: String(entry.byteLength),
          });
        }
      }
    } finally {
      await file.close();
    }
  });
});

describe("--onnx-embed", () => {
  it("writes self-contained graphs that give identical results", async () => {
    const dir = join(root, "embed");
    const { config } = await canonicalFromHf({
      hfSafetensorsPath: fixturePath("tiny-vit-p8/hf/model.safetensors"),
      modelDir: join(root, "embed-source"),
    });
    await writeOnnxModels({ modelDir: join(root, "embed-source"), config });
    const reference = await runTowersOn(join(root, "embed-source"), expected);

    // The embedded graphs are written next to the weights, then moved away from them.
    const events: string[] = [];
    await writeOnnxModels({
      modelDir: join(root, "embed-source"),
      config,
      embed: true,
      onProgress: (e) => events.push(`${e.status}:${e.tower}`),
    });
    await mkdir(dir, { recursive: true });
    for (const f of ["vision.onnx", "text.onnx"]) await cp(join(root, "embed-source", f), join(dir, f));
    const model = decodeModel(readFileSync(join(dir, "vision.onnx")));
    expect(model.graph.initializer.every((t) => t.dataLocation !== 1)).toBe(true);

    const out = await runTowersOn(dir, expected);
    expect(out.imageEmbeds).toEqual(reference.imageEmbeds);
    expect(out.textEmbeds).toEqual(reference.textEmbeds);
    expect(events).toEqual([
      "onnx-graph:vision",
      "onnx-written:vision",
      "onnx-graph:text",
      "onnx-written:text",
    ]);
  });
});

describe("refusals", () => {
  it("refuses a weights file outside the model directory", async () => {
    const { config, safetensorsPath } = await canonicalFromHf({
      hfSafetensorsPath: fixturePath("tiny-vit-p8/hf/model.safetensors"),
      modelDir: join(root, "outside"),
    });
    const error = await writeOnnxModels({ modelDir: join(root, "elsewhere"), config, safetensorsPath }).catch(
      (e: unknown) => e,
    );
    expect(isUnmaskError(error, "ONNX_EXTERNAL_PATH")).toBe(true);
  });

  it("names the tensor whose shape does not match the config", async () => {
    const { config } = await canonicalFromHf({
      hfSafetensorsPath: fixturePath("tiny-vit-p8/hf/model.safetensors"),
      modelDir: join(root, "shape"),
    });
    const error = await writeOnnxModels({
      modelDir: join(root, "shape"),
      config: { ...config, visionWidth: 64, visionHeads: 1 },
    }).catch((e: unknown) => e);
    expect(isUnmaskError(error, "ONNX_WEIGHT_SHAPE")).toBe(true);
    expect((error as Error).message).toContain("visual.conv1.weight");
  });

  it("refuses a ResNet config", async () => {
    const { config } = await canonicalFromHf({
      hfSafetensorsPath: fixturePath("tiny-vit-p8/hf/model.safetensors"),
      modelDir: join(root, "resnet"),
    });
    const error = await writeOnnxModels({
      modelDir: join(root, "resnet"),
      config: { ...config, architecture: "resnet", visionPatchSize: null },
    }).catch((e: unknown) => e);
    expect(isUnmaskError(error, "ONNX_UNSUPPORTED_MODEL")).toBe(true);
  });
});
