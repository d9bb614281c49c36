/**
 * The product through the public package APIs, as a program would use them:
 * @unmask/convert -> @unmask/trainer (cpu engine) -> @unmask/mask-format -> @unmask/infer.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type ConvertProgress, convert } from "@unmask/convert";
import { fixturePath } from "@unmask/fixtures";
import { createClassifier, evaluateImageFolder, listImageFolder } from "@unmask/infer";
import {
  decodeMask,
  encodeMask,
  inspect,
  maskFromSafetensors,
  maskToSafetensors,
  validate,
} from "@unmask/mask-format";
import { readMaskFile } from "@unmask/mask-format/node";
import { type TrainProgress, train } from "@unmask/trainer";
import { describe, expect, it } from "vitest";
import { CIFAR10, imageSubset, listImages, referencePredictions, tempDir } from "./helpers.js";

describe("the public APIs, end to end", () => {
  it("convert -> train -> .umask -> classify and evaluate with @unmask/infer", async () => {
    const dir = tempDir("api");
    const trainData = imageSubset(CIFAR10, join(dir, "train"), 10, 4);
    const testData = imageSubset(CIFAR10, join(dir, "test"), 20, 2);
    const model = join(dir, "model");

    // convert: a torch.save zip archive -> the canonical model directory.
    const convertEvents = new Set<string>();
    const converted = await convert(fixturePath("tiny-vit-p8/model.state_dict.pt"), model, {
      onProgress: (e: ConvertProgress) => convertEvents.add(e.status),
    });
    expect(converted.sourceFormat).toBe("torch-zip");
    expect(converted.files).toEqual(["config.json", "model.safetensors", "text.onnx", "vision.onnx"]);
    expect(converted.config).toMatchObject({ imageResolution: 32, visionPatchSize: 8, embedDim: 64 });
    expect(convertEvents).toContain("tensor");
    expect(convertEvents).toContain("done");

    // train: two steps of R-AMT on the cpu engine, evaluated on the test photos.
    const trainEvents: TrainProgress["status"][] = [];
    const maskPath = join(dir, "api.umask");
    const trained = await train({
      model,
      data: trainData,
      testData,
      shots: 4,
      seed: 7,
      epochs: 2,
      lr: 0.01,
      engine: "cpu",
      out: maskPath,
      onProgress: (e) => trainEvents.push(e.status),
    });
    const { report } = trained;
    expect(new Set(trainEvents)).toEqual(
      new Set(["prepare", "epoch-start", "step", "epoch-end", "checkpoint", "evaluate", "done"]),
    );
    expect(trainEvents.filter((s) => s === "step")).toHaveLength(2);
    expect(report.accuracy.testImages).toBe(20);
    expect(report.switchedOff).toBeGreaterThan(0);
    expect(trained.maskPath).toBe(maskPath);
    expect(new Uint8Array(readFileSync(maskPath))).toEqual(trained.maskBytes);

    // mask-format: the file agrees with the report, and survives a safetensors round trip.
    const summary = inspect(trained.maskBytes);
    expect(summary.total.zeros).toBe(report.switchedOff);
    expect(summary.total.parameters).toBe(report.maskEntries);
    expect(summary.baseModel.fingerprint).toBe(report.model.fingerprint);
    expect(summary.metrics).toMatchObject({ accuracy: report.accuracy.masked, testImages: 20 });
    expect(validate(trained.maskBytes).ok).toBe(true);
    const decoded = await readMaskFile(maskPath);
    const roundTrip = maskFromSafetensors(maskToSafetensors(decoded));
    expect(roundTrip.tensors.map((t) => t.name)).toEqual(decoded.tensorNames);
    const reencoded = decodeMask(encodeMask({ ...roundTrip, baseModel: decoded.baseModel }));
    for (const t of decoded.tensors) expect(reencoded.tensor(t.name).bits()).toEqual(t.bits());

    // infer: the mask's head gives the classes; the labels are those of an independent forward.
    const classifier = await createClassifier({ model, mask: maskPath });
    try {
      expect(classifier.headSource).toBe("mask");
      expect(classifier.classNames).toEqual(report.data.classes);
      const images = listImages(testData).map((x) => x.path);
      const results = await classifier.classify(images, { topK: 2 });
      const expected = await referencePredictions(model, decoded, images);
      expect(results.map((r) => r.index)).toEqual(expected.labels);
      const embeddings = await classifier.embed(images.slice(0, 2));
      expect(embeddings).toHaveLength(2 * 64);
      expect(Math.hypot(...embeddings.subarray(0, 64))).toBeCloseTo(1, 5);

      // The trainer's evaluation (cpu engine) and infer's (onnxruntime) count the same images right.
      const evaluation = await evaluateImageFolder({ classifier, data: await listImageFolder(testData) });
      expect(evaluation.images).toBe(20);
      expect(evaluation.accuracy).toBeCloseTo(report.accuracy.masked as number, 12);
    } finally {
      await classifier.dispose();
    }
  });
});
