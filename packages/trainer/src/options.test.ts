import { describe, expect, it } from "vitest";
import { DEFAULT_HYPER } from "./engine.js";
import { engineFactory } from "./engine-factory.js";
import { cosineLr, PRESETS, positive, presetSettings } from "./options.js";
import { identityHash, type RunIdentity } from "./prepare.js";

describe("recipe settings", () => {
  it("anneals per epoch from lr to near zero without warmup", () => {
    expect(cosineLr(8e-5, 0, 30)).toBe(8e-5);
    expect(cosineLr(8e-5, 15, 30)).toBeCloseTo(4e-5, 18);
    expect(cosineLr(8e-5, 29, 30)).toBeCloseTo((8e-5 * (1 + Math.cos((29 * Math.PI) / 30))) / 2, 18);
    expect(cosineLr(8e-5, 29, 30)).toBeLessThan(3e-7);
  });

  it("has the published presets and names unknown ones", () => {
    expect(PRESETS.recipe).toEqual({ epochs: 30, batchSize: 32, lr: 8e-5, lambda: 1 });
    expect(presetSettings("rmt-16shot").lambda).toBe(0.3);
    expect(presetSettings("imagenet")).toMatchObject({ epochs: 10, lr: 3e-5 });
    expect(() => presetSettings("fast")).toThrow(/recipe, rmt-16shot, imagenet/);
    expect(() => positive(0, "epochs", true)).toThrow(/epochs must be a positive integer/);
    expect(() => positive(1.5, "epochs", true)).toThrow(/epochs/);
    expect(positive(1e-5, "lr")).toBe(1e-5);
  });

  it("refuses an unknown engine", async () => {
    await expect(engineFactory("tpu" as "cpu")).rejects.toMatchObject({ code: "BAD_OPTION" });
  });

  it("hashes every setting that changes the result", () => {
    const base: RunIdentity = {
      fingerprint: "ab".repeat(32),
      maskedTensors: ["visual.conv1.weight"],
      classNames: ["a", "b"],
      templates: ["a photo of a {}."],
      fileListSha256: "cd".repeat(32),
      seed: 1,
      epochs: 30,
      batchSize: 32,
      lr: 8e-5,
      hyper: DEFAULT_HYPER,
      cacheSize: 32,
      engine: "cpu",
    };
    const h = identityHash(base);
    expect(identityHash({ ...base, hyper: { ...DEFAULT_HYPER } })).toBe(h);
    for (const change of [
      { seed: 2 },
      { lr: 7e-5 },
      { epochs: 29 },
      { batchSize: 16 },
      { cacheSize: 64 },
      { engine: "cuda" },
      { templates: ["{} texture."] },
      { classNames: ["b", "a"] },
      { fileListSha256: "ce".repeat(32) },
      { hyper: { ...DEFAULT_HYPER, gdrLambda: 0.3 } },
    ])
      expect(identityHash({ ...base, ...change })).not.toBe(h);
  });
});
