import { mkdtempSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { convert } from "@unmask/convert";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClassifier } from "./classifier.js";
import { alignToClasses, evaluateImageFolder, findClass, listImageFolder } from "./evaluate.js";

const repo = fileURLToPath(new URL("../../../", import.meta.url));
const cifar = join(repo, "fixtures/cifar10");
const reference = JSON.parse(readFileSync(join(cifar, "zero-shot-reference.json"), "utf8")) as {
  prompt: string;
  classes: string[];
  models: Record<string, { accuracy: number; predictions: Record<string, number> }>;
};

let root: string;
let modelDir: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "unmask-infer-eval-"));
  modelDir = join(root, "nano");
  await convert(join(repo, "packages/cli/assets/demo/nano-clip.jit.pt"), modelDir);
}, 120_000);
afterAll(() => rm(root, { recursive: true, force: true }));

describe("evaluateImageFolder", () => {
  it("lists a split layout's test folder in sorted class order", async () => {
    const data = await listImageFolder(cifar);
    expect(data.classNames).toEqual(reference.classes);
    expect(data.items).toHaveLength(1000);
    expect(relative(cifar, data.items[0].path)).toBe("test/airplane/00000.jpg");
    expect(() => alignToClasses(data, ["airplane"])).toThrow(/not among/);
  });

  it("matches folder names to a head's cleaned class names (ankle_boot is 'ankle boot')", () => {
    const data = {
      root: "/data",
      classNames: ["ankle_boot", "T-shirt"],
      items: [
        { path: "a.png", label: 0 },
        { path: "b.png", label: 1 },
      ],
    };
    const aligned = alignToClasses(data, ["t-shirt", "ankle boot"]);
    expect(aligned.items.map((i) => i.label)).toEqual([1, 0]);
    expect(findClass(["ankle boot"], "ankle_boot")).toBe(0);
    expect(findClass(["ankle_boot", "ankle boot"], "ankle boot")).toBe(1);
    expect(findClass(["sandal"], "ankle_boot")).toBeUndefined();
  });

  it("agrees with PyTorch's zero-shot predictions on 1000 CIFAR-10 images (>= 99.9% identical)", async () => {
    const data = await listImageFolder(cifar);
    const classifier = await createClassifier({
      model: modelDir,
      classes: data.classNames,
      template: reference.prompt,
      batchSize: 100,
    });
    try {
      const events: number[] = [];
      const result = await evaluateImageFolder({
        classifier,
        data,
        chunkSize: 250,
        onProgress: (e) => events.push(e.done),
      });
      expect(events).toEqual([250, 500, 750, 1000]);
      const want = reference.models["nano-clip"].predictions;
      let same = 0;
      const mismatches: string[] = [];
      data.items.forEach((item, i) => {
        const id = relative(cifar, item.path).split("\\").join("/");
        if (want[id] === result.predictions[i]) same++;
        else mismatches.push(`${id}: ${want[id]} vs ${result.predictions[i]}`);
      });
      expect(same / 1000, mismatches.join("; ")).toBeGreaterThanOrEqual(0.999);
      expect(Math.abs(result.accuracy - reference.models["nano-clip"].accuracy)).toBeLessThanOrEqual(0.001);
      // The summary is consistent with the per-image predictions.
      expect(result.perClass.reduce((a, c) => a + c.images, 0)).toBe(1000);
      expect(result.perClass.reduce((a, c) => a + c.correct, 0)).toBe(result.correct);
      const offDiagonal = result.confusion.flat().reduce((a, b) => a + b, 0) - result.correct;
      expect(offDiagonal).toBe(1000 - result.correct);
      expect(result.topConfusions[0].count).toBeGreaterThanOrEqual(result.topConfusions.at(-1)!.count);
    } finally {
      await classifier.dispose();
    }
  }, 120_000);
});
