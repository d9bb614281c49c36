import { describe, expect, it } from "vitest";
import { errorCode, FINGERPRINT, randomBits, rng } from "../test/helpers.js";
import { decodeMask } from "./decode.js";
import { encodeMask, type MaskInput } from "./encode.js";
import { inspect } from "./inspect.js";
import { assertBaseModel, validate } from "./validate.js";

function sample(): MaskInput {
  const random = rng(61);
  return {
    baseModel: { name: "tiny", fingerprint: FINGERPRINT },
    tensors: [
      { name: "a", shape: [40, 50], bits: randomBits(2000, 0.05, random) },
      { name: "b", shape: [10], bits: randomBits(10, 0.5, random) },
    ],
    recipe: { lr: 8e-5 },
    head: { classNames: ["x", "y", "z"], template: "a photo of a {}.", textFeatures: new Float32Array(12) },
  };
}

describe("validate", () => {
  it("passes a good file and reports the first problem of a bad one", () => {
    const bytes = encodeMask(sample());
    const good = validate(bytes, { fingerprint: FINGERPRINT });
    expect(good.ok).toBe(true);
    const damaged = bytes.slice();
    damaged[damaged.length - 30] ^= 0xff; // inside a payload: only a full decode sees it
    expect(decodeMask(damaged).tensorNames).toEqual(["a", "b"]);
    const bad = validate(damaged);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.code).toBe("CHECKSUM_MISMATCH");
    const other = validate(bytes, { fingerprint: "cd".repeat(32) });
    expect(other.ok === false && other.error.code).toBe("FINGERPRINT_MISMATCH");
  });

  it("assertBaseModel refuses another model", () => {
    const mask = decodeMask(encodeMask(sample()), { source: "m.umask" });
    assertBaseModel(mask, FINGERPRINT);
    expect(errorCode(() => assertBaseModel(mask, "cd".repeat(32)))).toBe("FINGERPRINT_MISMATCH");
  });
});

describe("inspect", () => {
  it("summarises per tensor and in total", () => {
    const input = sample();
    const bytes = encodeMask(input);
    const summary = inspect(bytes);
    expect(summary.verified).toBe(true);
    expect(summary.fileBytes).toBe(bytes.length);
    expect(summary.baseModel).toEqual(input.baseModel);
    const mask = decodeMask(bytes);
    expect(summary.tensors).toEqual(
      mask.tensors.map((t) => ({
        name: t.name,
        shape: [...t.shape],
        parameters: t.numel,
        zeros: t.zeros,
        zeroFraction: t.zeros / t.numel,
        encoding: t.encoding,
        ...(t.m !== undefined ? { m: t.m } : {}),
        encodedBytes: t.encodedBytes,
      })),
    );
    expect(summary.total.parameters).toBe(2010);
    expect(summary.total.zeros).toBe(summary.tensors[0].zeros + summary.tensors[1].zeros);
    expect(summary.total.encodedBytes).toBe(
      summary.tensors[0].encodedBytes + summary.tensors[1].encodedBytes,
    );
    expect(summary.total.bitmapBytes).toBe(250 + 2);
    expect(summary.head).toEqual({
      classes: 3,
      dim: 4,
      template: "a photo of a {}.",
      classNames: ["x", "y", "z"],
      encodedBytes: 24,
    });
    expect(summary.recipe).toEqual({ lr: 8e-5 });
    expect(inspect(mask, { verify: false }).verified).toBe(false);
  });
});
