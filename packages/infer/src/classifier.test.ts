import { mkdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { readSafetensorsFloat32, SafetensorsFile } from "@unmask/clip";
import { fixturePath } from "@unmask/fixtures";
import { decodeMask, isUnmaskError } from "@unmask/mask-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertTinyModel, makeMask, type TinyModel, writeMaskedCopy } from "../test/helpers/tiny-model.js";
import { BaseModel } from "./base-model.js";
import { classProbabilities, createClassifier } from "./classifier.js";

let tiny: TinyModel;
let expected: Map<string, { shape: number[]; data: Float32Array }>;
let inputIds: Int32Array;
const CLASSES = ["cat", "dog", "car", "tree", "fish"];

beforeAll(async () => {
  tiny = await convertTinyModel();
  expected = (await readSafetensorsFloat32(fixturePath("tiny-vit-p8/expected.safetensors"))).tensors;
  const file = await SafetensorsFile.open(fixturePath("tiny-vit-p8/expected.safetensors"));
  const bytes = await file.readBytes("input_ids");
  inputIds = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  await file.close();
}, 60_000);
afterAll(() => tiny?.cleanup());

function maxRelativeError(actual: Float32Array, reference: Float32Array): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < reference.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - reference[i]));
    maxRef = Math.max(maxRef, Math.abs(reference[i]));
  }
  return maxDiff / maxRef;
}

function normalized(data: Float32Array, dim: number): Float32Array {
  const out = Float32Array.from(data);
  for (let r = 0; r < out.length / dim; r++) {
    const row = out.subarray(r * dim, (r + 1) * dim);
    const norm = Math.hypot(...row);
    for (let i = 0; i < dim; i++) row[i] /= norm;
  }
  return out;
}

function imagesOf(pixels: Float32Array, count: number): Float32Array[] {
  const stride = pixels.length / count;
  return Array.from({ length: count }, (_, i) => pixels.slice(i * stride, (i + 1) * stride));
}

describe("zero-shot on the tiny model", () => {
  it("embeds images and texts as the float64 PyTorch reference (1e-4 relative)", async () => {
    const model = await BaseModel.load({ model: tiny.dir });
    try {
      const pixels = expected.get("pixel_values")!.data;
      const image = await model.encodeImages(pixels, 3);
      expect(maxRelativeError(image, expected.get("image_embeds")!.data)).toBeLessThan(1e-4);
      const text = await model.encodeTexts(inputIds, 4);
      expect(maxRelativeError(text, expected.get("text_embeds")!.data)).toBeLessThan(1e-4);
      expect(await model.logitScale()).toBeCloseTo(Math.exp((await readLogitScale(tiny.dir))[0]), 5);
    } finally {
      await model.dispose();
    }
  });

  it("classify = softmax(logit_scale * cos) with text.onnx features, any batch size", async () => {
    const model = await BaseModel.load({ model: tiny.dir });
    const classifier = await createClassifier({ model, classes: CLASSES, batchSize: 2 });
    try {
      expect(classifier.headSource).toBe("text-encoder");
      const pixels = expected.get("pixel_values")!.data;
      const images = imagesOf(pixels, 3);
      // Direct computation: ORT embeddings -> normalised -> cosine with the class features.
      const dim = model.config.embedDim;
      const imageFeatures = normalized(await model.encodeImages(pixels, 3), dim);
      const textFeatures = await model.textFeatures(CLASSES, ["a photo of a {}."]);
      const direct = classProbabilities(imageFeatures, textFeatures, dim, await model.logitScale());
      const probs = await classifier.probabilities(images);
      for (let i = 0; i < direct.length; i++) expect(probs[i]).toBeCloseTo(direct[i], 5);
      const results = await classifier.classify(images, { topK: 3 });
      expect(results).toHaveLength(3);
      for (const [n, r] of results.entries()) {
        const row = Array.from(direct.subarray(n * 5, n * 5 + 5));
        expect(r.index).toBe(row.indexOf(Math.max(...row)));
        expect(r.top.map((t) => t.score)).toEqual([...r.top.map((t) => t.score)].sort((a, b) => b - a));
        expect(r.top).toHaveLength(3);
      }
      // The text features are cached per class list.
      expect(await model.textFeatures(CLASSES, ["a photo of a {}."])).toBe(textFeatures);
      // The reference logits of the fixture: 4 prompts as classes.
      const promptFeatures = normalized(await model.encodeTexts(inputIds, 4), dim);
      const refLogits = expected.get("logits_per_image")!.data;
      const scale = await model.logitScale();
      const cos = new Float32Array(12);
      for (let n = 0; n < 3; n++)
        for (let c = 0; c < 4; c++) {
          let dot = 0;
          for (let i = 0; i < dim; i++) dot += imageFeatures[n * dim + i] * promptFeatures[c * dim + i];
          cos[n * 4 + c] = scale * dot;
        }
      for (let i = 0; i < 12; i++) expect(Math.abs(cos[i] - refLogits[i])).toBeLessThan(1e-3);
    } finally {
      await classifier.dispose();
      await model.dispose();
    }
  });
});

async function readLogitScale(dir: string): Promise<Float32Array> {
  return (await readSafetensorsFloat32(join(dir, "model.safetensors"))).tensors.get("logit_scale")!.data;
}

describe("masked inference", () => {
  const bitsCache: { value?: Awaited<ReturnType<typeof makeMask>> } = {};
  let referenceDir: string;

  beforeAll(async () => {
    // One tensor entirely masked off, the others at 90% kept.
    bitsCache.value = await makeMask(tiny.dir, {
      keep: { "visual.transformer.resblocks.1.attn.out_proj.weight": 0 },
    });
    referenceDir = join(tiny.root, "reference");
    mkdirSync(referenceDir);
    await writeMaskedCopy(tiny.dir, referenceDir, bitsCache.value.bits);
  }, 60_000);
  afterAll(() => rm(referenceDir, { recursive: true, force: true }));

  for (const weightSharing of ["shared-session", "session-per-mask"] as const) {
    it(`${weightSharing}: zeroes exactly the masked weights (= W' written to disk)`, async () => {
      const pixels = expected.get("pixel_values")!.data;
      const reference = await BaseModel.load({ model: referenceDir });
      const model = await BaseModel.load({ model: tiny.dir, weightSharing });
      try {
        const want = await reference.encodeImages(pixels, 3);
        const handle = await model.addMask(bitsCache.value!.bytes);
        expect(handle.maskedBytes).toBeGreaterThan(0);
        const masked = await model.encodeImages(pixels, 3, handle);
        expect(maxRelativeError(masked, want)).toBeLessThan(1e-6);
        // Zero-shot through the same model is unchanged, and differs from the masked output.
        const plain = await model.encodeImages(pixels, 3);
        expect(maxRelativeError(plain, expected.get("image_embeds")!.data)).toBeLessThan(1e-4);
        expect(maxRelativeError(plain, masked)).toBeGreaterThan(1e-3);
      } finally {
        await reference.dispose();
        await model.dispose();
      }
    });
  }

  it("serves two masks over one base model; each matches its own reference", async () => {
    const second = await makeMask(tiny.dir, { seed: 99 });
    const secondDir = join(tiny.root, "reference-2");
    mkdirSync(secondDir);
    await writeMaskedCopy(tiny.dir, secondDir, second.bits);
    const pixels = expected.get("pixel_values")!.data;
    const model = await BaseModel.load({ model: tiny.dir });
    const refs = [await BaseModel.load({ model: referenceDir }), await BaseModel.load({ model: secondDir })];
    try {
      const a = await model.addMask(bitsCache.value!.bytes, { name: "a" });
      const b = await model.addMask(second.bytes, { name: "b" });
      expect(model.loadedMasks().map((m) => m.name)).toEqual(["a", "b"]);
      const [outA, outB] = await Promise.all([
        model.encodeImages(pixels, 3, a),
        model.encodeImages(pixels, 3, b),
      ]);
      expect(maxRelativeError(outA, await refs[0].encodeImages(pixels, 3))).toBeLessThan(1e-6);
      expect(maxRelativeError(outB, await refs[1].encodeImages(pixels, 3))).toBeLessThan(1e-6);
    } finally {
      for (const r of refs) await r.dispose();
      await model.dispose();
      await rm(secondDir, { recursive: true, force: true });
    }
  });

  it("refuses a mask made for another base model with FINGERPRINT_MISMATCH", async () => {
    const { bytes } = await makeMask(tiny.dir, { fingerprint: "ab".repeat(32) });
    const model = await BaseModel.load({ model: tiny.dir });
    try {
      const error = await model.addMask(bytes).catch((e: unknown) => e);
      expect(isUnmaskError(error, "FINGERPRINT_MISMATCH")).toBe(true);
      await expect(createClassifier({ model, mask: bytes, classes: CLASSES })).rejects.toMatchObject({
        code: "FINGERPRINT_MISMATCH",
      });
    } finally {
      await model.dispose();
    }
  });

  it("refuses a mask over a tensor the model does not have", async () => {
    const { bytes } = await makeMask(tiny.dir);
    const decoded = decodeMask(bytes);
    const renamed = {
      ...decoded,
      tensors: decoded.tensors.map((t, i) => (i === 0 ? { ...t, name: "visual.nope" } : t)),
    };
    const model = await BaseModel.load({ model: tiny.dir });
    try {
      await expect(model.addMask(renamed as never)).rejects.toMatchObject({ code: "MASK_TENSOR_MISMATCH" });
    } finally {
      await model.dispose();
    }
  });

  it("classifies from the mask's head with no text tower", async () => {
    const dim = 64;
    const textFeatures = new Float32Array(3 * dim);
    for (let i = 0; i < textFeatures.length; i++) textFeatures[i] = Math.sin(i * 0.37);
    const head = { classNames: ["a", "b", "c"], template: "a photo of a {}.", textFeatures };
    const { bytes } = await makeMask(tiny.dir, { head });
    const imageOnly = join(tiny.root, "image-only");
    mkdirSync(imageOnly);
    const { copyFile } = await import("node:fs/promises");
    for (const f of ["config.json", "vision.onnx", "model.safetensors"])
      await copyFile(join(tiny.dir, f), join(imageOnly, f));
    const classifier = await createClassifier({ model: imageOnly, mask: bytes });
    try {
      expect(classifier.headSource).toBe("mask");
      expect(classifier.classNames).toEqual(["a", "b", "c"]);
      const results = await classifier.classify(imagesOf(expected.get("pixel_values")!.data, 3), { topK: 2 });
      expect(results.every((r) => ["a", "b", "c"].includes(r.label) && r.top.length === 2)).toBe(true);
      await expect(createClassifier({ model: imageOnly, classes: ["x", "y"] })).rejects.toMatchObject({
        code: "NO_TEXT_TOWER",
      });
    } finally {
      await classifier.dispose();
      await rm(imageOnly, { recursive: true, force: true });
    }
  });
});
