// Zero-shot CIFAR-10 with the converted nano-clip (OpenAI-style TorchScript, fp16): the ONNX
// graphs must give PyTorch's prediction on >= 99.5% of the 1,000 test photos and the same
// accuracy within 0.5 points (fixtures/cifar10/zero-shot-reference.json, PyTorch fp32 compute).
import { mkdtempSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "@unmask/fixtures";
import { afterAll, expect, it } from "vitest";
import { convert } from "../convert.js";
import { zeroShotPredictions } from "./testing.js";

interface Reference {
  prompt: string;
  classes: string[];
  models: Record<string, { accuracy: number; predictions: Record<string, number> }>;
}

const root = mkdtempSync(join(tmpdir(), "unmask-zero-shot-"));
afterAll(() => rm(root, { recursive: true, force: true }));

it("nano-clip on CIFAR-10 agrees with PyTorch", async () => {
  const cifar = join(repoRoot, "fixtures/cifar10");
  const reference = JSON.parse(readFileSync(join(cifar, "zero-shot-reference.json"), "utf8")) as Reference;
  const expected = reference.models["nano-clip"];
  const modelDir = join(root, "nano-clip");
  const { config } = await convert(join(repoRoot, "packages/cli/assets/demo/nano-clip.jit.pt"), modelDir);

  const files = Object.keys(expected.predictions).sort();
  const predictions = await zeroShotPredictions({
    modelDir,
    imagePaths: files.map((f) => join(cifar, f)),
    classNames: reference.classes,
    template: reference.prompt,
    resolution: config.imageResolution,
  });
  let agree = 0;
  let correct = 0;
  files.forEach((f, i) => {
    if (predictions[i] === expected.predictions[f]) agree++;
    if (reference.classes[predictions[i]] === f.split("/")[1]) correct++;
  });
  expect(files.length).toBe(1000);
  expect(agree / files.length).toBeGreaterThanOrEqual(0.995);
  expect(Math.abs(correct / files.length - expected.accuracy)).toBeLessThanOrEqual(0.005);
}, 60_000);
