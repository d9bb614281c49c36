/**
 * The product through the command line, spawned as a user runs it:
 * convert every fixture format -> train a mask a few steps on the cpu engine -> inspect ->
 * predict -> eval, each step checked against an independent computation.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsFile } from "@unmask/clip";
import { fixturePath } from "@unmask/fixtures";
import { decodeMask } from "@unmask/mask-format";
import { beforeAll, describe, expect, it } from "vitest";
import {
  CIFAR10,
  imageSubset,
  lastJson,
  listImages,
  referencePredictions,
  runCliOk,
  tempDir,
} from "./helpers.js";

const FORMATS = {
  torchscript: "tiny-vit-p8/model.jit.pt",
  "torch-zip": "tiny-vit-p8/model.state_dict.pt",
  "torch-legacy": "tiny-vit-p8/model.legacy.pt",
  "hf-safetensors": "tiny-vit-p8/hf",
} as const;

const dir = tempDir("cli");
const models = Object.fromEntries(Object.keys(FORMATS).map((f) => [f, join(dir, `model-${f}`)])) as Record<
  keyof typeof FORMATS,
  string
>;
const model = models.torchscript;
const trainData = join(dir, "train");
const testData = join(dir, "test");
const maskPath = join(dir, "tiny.umask");

interface Report {
  engine: string;
  shots: number;
  maskEntries: number;
  switchedOff: number;
  maskedFraction: number;
  accuracy: { zeroShot: number; masked: number; testImages: number };
  history: unknown[];
  model: { fingerprint: string };
  recipe: { maskedTensors: string[]; epochs: number; lr: number };
  data: { classes: string[] };
}
let report: Report;

beforeAll(() => {
  imageSubset(CIFAR10, trainData, 0, 6); // 60 photos: the few-shot pool
  imageSubset(CIFAR10, testData, 6, 3); // 30 other photos to evaluate on
});

describe.sequential("unmask CLI, end to end", () => {
  it("converts every fixture format to the same canonical tensors", async () => {
    for (const [format, fixture] of Object.entries(FORMATS)) {
      const out = models[format as keyof typeof FORMATS];
      const result = lastJson<{ sourceFormat: string; files: string[]; tensors: number }>(
        await runCliOk(["convert", fixturePath(fixture), "--out", out, "--json"]),
      );
      expect(result.sourceFormat).toBe(format);
      expect(result.files).toEqual(["config.json", "model.safetensors", "text.onnx", "vision.onnx"]);
    }
    const reference = await SafetensorsFile.open(join(model, "model.safetensors"));
    try {
      const names = [...reference.tensors.keys()].sort();
      expect(names).toContain("visual.transformer.resblocks.1.attn.in_proj_weight");
      for (const other of Object.values(models).slice(1)) {
        const file = await SafetensorsFile.open(join(other, "model.safetensors"));
        try {
          expect([...file.tensors.keys()].sort()).toEqual(names);
          for (const name of names) {
            const a = reference.tensors.get(name);
            const b = file.tensors.get(name);
            expect({ name, dtype: b?.dtype, shape: b?.shape }).toEqual({
              name,
              dtype: a?.dtype,
              shape: a?.shape,
            });
            expect(
              Buffer.from(await file.readBytes(name)).equals(Buffer.from(await reference.readBytes(name))),
              name,
            ).toBe(true);
          }
        } finally {
          await file.close();
        }
        expect(JSON.parse(readFileSync(join(other, "config.json"), "utf8")).config ?? null).toEqual(
          JSON.parse(readFileSync(join(model, "config.json"), "utf8")).config ?? null,
        );
      }
    } finally {
      await reference.close();
    }
  });

  it("trains a mask for a few steps on the cpu engine", async () => {
    report = lastJson<Report>(
      await runCliOk([
        "train",
        "--model",
        model,
        "--data",
        trainData,
        "--test-data",
        testData,
        "--shots",
        "4",
        "--epochs",
        "2",
        "--lr",
        "0.01", // large enough to flip mask bits within two Adam steps (scores start 5e-3 above the threshold)
        "--device",
        "cpu",
        "--out",
        maskPath,
        "--json",
      ]),
    );
    expect(report.engine).toBe("cpu");
    expect(report.shots).toBe(4);
    expect(report.history).toHaveLength(2);
    expect(report.accuracy.testImages).toBe(30);
    expect(report.switchedOff).toBeGreaterThan(0);
    expect(report.switchedOff).toBeLessThan(report.maskEntries);
    expect(existsSync(maskPath)).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, "tiny.report.json"), "utf8")).switchedOff).toBe(
      report.switchedOff,
    );
    expect(existsSync(`${maskPath}.ckpt`)).toBe(false); // removed once the run completes
  });

  it("inspect --json describes the mask the trainer wrote", async () => {
    const summary = lastJson<{
      fileBytes: number;
      verified: boolean;
      baseModel: { fingerprint: string };
      tensors: { name: string; parameters: number; zeros: number }[];
      total: { parameters: number; zeros: number; zeroFraction: number; tensors: number };
      head: { classes: number; classNames: string[] } | null;
    }>(await runCliOk(["inspect", maskPath, "--json"]));
    expect(summary.fileBytes).toBe(statSync(maskPath).size);
    expect(summary.verified).toBe(true);
    expect(summary.baseModel.fingerprint).toBe(report.model.fingerprint);
    expect(summary.tensors.map((t) => t.name)).toEqual(report.recipe.maskedTensors);
    expect(summary.total.parameters).toBe(report.maskEntries);
    expect(summary.total.zeros).toBe(report.switchedOff);
    expect(summary.total.zeroFraction).toBeCloseTo(report.maskedFraction, 12);
    expect(summary.head?.classNames).toEqual(report.data.classes);

    // The same counts from the decoded bits themselves.
    const mask = decodeMask(new Uint8Array(readFileSync(maskPath)));
    let zeros = 0;
    for (const t of mask.tensors) {
      const bits = t.bits();
      for (let i = 0; i < t.numel; i++) if (((bits[i >> 3] >> (7 - (i & 7))) & 1) === 0) zeros++;
    }
    expect(zeros).toBe(report.switchedOff);
  });

  it("predict --json gives the labels of an independent forward pass of the masked model", async () => {
    const images = listImages(testData)
      .filter((_, i) => i % 3 === 0)
      .map((x) => x.path); // one photo per class
    const lines = (
      await runCliOk(["predict", ...images, "--model", model, "--mask", maskPath, "--top", "3", "--json"])
    )
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            image: string;
            label: string;
            score: number;
            top: { label: string; score: number }[];
          },
      );
    expect(lines.map((l) => l.image)).toEqual(images);
    const mask = decodeMask(new Uint8Array(readFileSync(maskPath)));
    const expected = await referencePredictions(model, mask, images);
    expect(lines.map((l) => l.label)).toEqual(expected.labels.map((c) => expected.classNames[c]));
    lines.forEach((l, i) => {
      expect(l.top).toHaveLength(3);
      expect(l.top[0]).toEqual({ label: l.label, score: l.score });
      // Every shown score is the reference probability of that class (onnxruntime vs the float32
      // cpu engine: the same fp16 weights, float32 arithmetic in a different order).
      for (const t of l.top)
        expect(t.score).toBeCloseTo(expected.probabilities[i][expected.classNames.indexOf(t.label)], 4);
      expect(l.top[0].score).toBeGreaterThanOrEqual(l.top[1].score);
      expect(l.top[1].score).toBeGreaterThanOrEqual(l.top[2].score);
    });
  });

  it("eval --json reports the accuracy of the independent forward pass and of the trainer", async () => {
    const result = lastJson<{ accuracy: number; images: number; correct: number; head: string }>(
      await runCliOk(["eval", "--model", model, "--mask", maskPath, "--data", testData, "--json"]),
    );
    expect(result.images).toBe(30);
    expect(result.head).toBe("mask");
    const all = listImages(testData);
    const mask = decodeMask(new Uint8Array(readFileSync(maskPath)));
    const expected = await referencePredictions(
      model,
      mask,
      all.map((x) => x.path),
    );
    const correct = all.filter((x, i) => expected.classNames[expected.labels[i]] === x.className).length;
    expect(result.correct).toBe(correct);
    expect(result.accuracy).toBeCloseTo(correct / 30, 12);
    expect(result.accuracy).toBeCloseTo(report.accuracy.masked, 12);
  });
});
