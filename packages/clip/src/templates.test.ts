import { isUnmaskError } from "@unmask/mask-format";
import { describe, expect, it } from "vitest";
import {
  cleanClassName,
  DATASET_TEMPLATES,
  DEFAULT_TEMPLATE,
  fillTemplate,
  templateForDataset,
} from "./templates.js";
import { buildClassTextFeatures } from "./text-features.js";
import { tokenize } from "./tokenizer-node.js";

describe("templates", () => {
  it("holds R-AMT's per-dataset templates", () => {
    expect(DATASET_TEMPLATES.OxfordPets).toBe("a photo of a {}, a type of pet.");
    expect(DATASET_TEMPLATES.DescribableTextures).toBe("{} texture.");
    expect(DATASET_TEMPLATES.EuroSAT).toBe("a centered satellite photo of {}.");
    expect(DATASET_TEMPLATES.Food101).toBe("a photo of {}, a type of food.");
    expect(DATASET_TEMPLATES.UCF101).toBe("a photo of a person doing {}.");
    expect(templateForDataset("ImageNet")).toBe(DEFAULT_TEMPLATE);
    expect(templateForDataset("MyFolder")).toBe("a photo of a {}.");
    expect(templateForDataset("toString")).toBe(DEFAULT_TEMPLATE);
  });

  it("cleans class names and fills templates like R-AMT's trainer", () => {
    expect(cleanClassName("Apply_Eye_Makeup")).toBe("apply eye makeup");
    expect(cleanClassName("Annual Crop Land")).toBe("annual crop land");
    expect(fillTemplate(DATASET_TEMPLATES.UCF101, cleanClassName("Apply_Eye_Makeup"))).toBe(
      "a photo of a person doing apply eye makeup.",
    );
    expect(() => fillTemplate("a photo", "cat")).toThrow(/placeholder/);
  });
});

describe("buildClassTextFeatures", () => {
  /** A deterministic fake encoder: embedding = the first E token ids (a different vector per prompt). */
  const E = 6;
  const calls: number[] = [];
  const encodeText = async (ids: Int32Array, count: number): Promise<Float32Array> => {
    calls.push(count);
    const out = new Float32Array(count * E);
    for (let r = 0; r < count; r++) for (let i = 0; i < E; i++) out[r * E + i] = ids[r * 77 + i] % 1000;
    return out;
  };

  it("averages normalised template embeddings and renormalises", async () => {
    calls.length = 0;
    const templates = ["a photo of a {}.", "{} texture.", "a centered satellite photo of {}."];
    const features = await buildClassTextFeatures({
      classNames: ["Sea_Lake", "cat"],
      templates,
      encodeText,
      batchSize: 4,
    });
    expect(calls).toEqual([4, 2]);
    expect(features.length).toBe(2 * E);
    for (const [c, name] of ["sea lake", "cat"].entries()) {
      const mean = new Float64Array(E);
      for (const t of templates) {
        const ids = tokenize(t.replace("{}", name));
        const v = Array.from(ids.subarray(0, E), (x) => x % 1000);
        const n = Math.hypot(...v);
        v.forEach((x, i) => {
          mean[i] += x / n / templates.length;
        });
      }
      const n = Math.hypot(...mean);
      for (let i = 0; i < E; i++) expect(features[c * E + i]).toBeCloseTo(mean[i] / n, 6);
      expect(Math.hypot(...features.subarray(c * E, (c + 1) * E))).toBeCloseTo(1, 6);
    }
  });

  it("rejects an encoder that returns the wrong size, and empty inputs", async () => {
    const bad = async (_ids: Int32Array, count: number) => new Float32Array(count * 3 + 1);
    await expect(
      buildClassTextFeatures({ classNames: ["cat", "dog"], templates: ["{}"], encodeText: bad }),
    ).rejects.toSatisfy((e: unknown) => isUnmaskError(e, "BAD_EMBEDDING"));
    await expect(buildClassTextFeatures({ classNames: [], templates: ["{}"], encodeText })).rejects.toSatisfy(
      (e: unknown) => isUnmaskError(e, "BAD_OPTION"),
    );
    await expect(
      buildClassTextFeatures({ classNames: ["word ".repeat(80)], templates: ["{}"], encodeText }),
    ).rejects.toSatisfy((e: unknown) => isUnmaskError(e, "TEXT_TOO_LONG"));
  });
});
