import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SafetensorsFile } from "@unmask/clip";
import { fixturePath } from "@unmask/fixtures";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConvertProgress, convert } from "../convert.js";
import { onnxExportStep } from "./convert-step.js";
import { decodeModel } from "./onnx-proto.js";
import { logitsPerImage, maxAbsError, relativeMaxError } from "./parity.js";
import { type ExpectedOutputs, readExpectedOutputs, runTowersOn } from "./testing.js";

const root = mkdtempSync(join(tmpdir(), "unmask-onnx-convert-"));
afterAll(() => rm(root, { recursive: true, force: true }));

let expected: ExpectedOutputs;
beforeAll(async () => {
  expected = await readExpectedOutputs(fixturePath("tiny-vit-p8/expected.safetensors"));
});

async function logitScaleOf(dir: string): Promise<number> {
  const file = await SafetensorsFile.open(join(dir, "model.safetensors"));
  try {
    return (await file.readFloat32("logit_scale"))[0];
  } finally {
    await file.close();
  }
}

// Every input format of the tiny fixture, converted by convert() with the ONNX step on.
describe.each([
  ["model.jit.pt", undefined],
  ["model.legacy.pt", undefined],
  ["model.state_dict.pt", undefined],
  ["hf/model.safetensors", undefined],
  ["model.jit.pt", "fp32"],
] as const)("convert(%s, dtype %s) writes ONNX towers matching PyTorch", (input, dtype) => {
  const out = join(root, `${input.replace(/\W/g, "_")}-${dtype ?? "default"}`);
  const events: ConvertProgress[] = [];
  beforeAll(async () => {
    await convert(fixturePath(`tiny-vit-p8/${input}`), out, { dtype, onProgress: (e) => events.push(e) });
  });

  it("within 1e-4 relative on embeddings and 1e-3 absolute on logits_per_image", async () => {
    const got = await runTowersOn(out, expected);
    expect(got.imageDims).toEqual([3, 64]);
    expect(got.textDims).toEqual([4, 64]);
    expect(relativeMaxError(got.imageEmbeds, expected.imageEmbeds)).toBeLessThan(1e-4);
    expect(relativeMaxError(got.textEmbeds, expected.textEmbeds)).toBeLessThan(1e-4);
    const logits = logitsPerImage(got.imageEmbeds, got.textEmbeds, 64, await logitScaleOf(out));
    expect(maxAbsError(logits, expected.logitsPerImage)).toBeLessThan(1e-3);
  });

  it("reports the graphs it wrote, small beside the weights", () => {
    const written = events.filter((e) => e.status === "onnx-written");
    expect(written.map((e) => e.status === "onnx-written" && e.file)).toEqual(["vision.onnx", "text.onnx"]);
    const weights = statSync(join(out, "model.safetensors")).size;
    for (const file of ["vision.onnx", "text.onnx"])
      expect(statSync(join(out, file)).size).toBeLessThan(weights / 20);
  });
});

describe("convert options", () => {
  it("onnx: { embed: true } writes self-contained graphs with the same results", async () => {
    const external = join(root, "model_jit_pt-default");
    const embedded = join(root, "embedded");
    await convert(fixturePath("tiny-vit-p8/model.jit.pt"), embedded, { onnx: { embed: true } });
    const model = decodeModel(readFileSync(join(embedded, "vision.onnx")));
    expect(model.graph.initializer.some((t) => t.dataLocation === 1)).toBe(false);
    const a = await runTowersOn(embedded, expected);
    const b = await runTowersOn(external, expected);
    expect(a.imageEmbeds).toEqual(b.imageEmbeds);
    expect(a.textEmbeds).toEqual(b.textEmbeds);
  });

  it("onnx: false writes no graphs", async () => {
    const result = await convert(fixturePath("tiny-vit-p8/model.jit.pt"), join(root, "no-onnx"), {
      onnx: false,
    });
    expect(result.files).toEqual(["config.json", "model.safetensors"]);
  });

  it("skips models without a ViT image tower, saying why", async () => {
    const events: ConvertProgress[] = [];
    const dir = join(root, "resnet");
    const { config } = await convert(fixturePath("tiny-vit-p8/model.jit.pt"), dir, { onnx: false });
    await onnxExportStep().run({
      dir,
      weightsPath: join(dir, "model.safetensors"),
      config: { ...config, architecture: "resnet", visionPatchSize: null },
      configJson: JSON.parse(readFileSync(join(dir, "config.json"), "utf8")),
      tensors: [],
      onProgress: (e) => events.push(e),
    });
    expect(events).toEqual([{ status: "onnx-skipped", reason: expect.stringContaining("resnet") }]);
  });
});
