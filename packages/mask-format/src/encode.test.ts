import { describe, expect, it } from "vitest";
import { errorCode, FINGERPRINT, randomBits, rng } from "../test/helpers.js";
import { bitsetByteLength, countZeros } from "./bitset.js";
import { decodeMask } from "./decode.js";
import { encodeMask, encodeTensorBits, type MaskInput } from "./encode.js";

function sampleInput(): MaskInput {
  const random = rng(21);
  return {
    baseModel: { name: "tiny", fingerprint: FINGERPRINT },
    tensors: [
      { name: "a", shape: [30, 40], bits: randomBits(1200, 0.03, random) },
      { name: "b", shape: [3, 3, 3], bits: randomBits(27, 0.5, random) },
      { name: "c", shape: [500], bits: randomBits(500, 0.98, random) },
    ],
    recipe: { lr: 8e-5, epochs: 30 },
    metrics: { accuracy: 0.9 },
    head: {
      classNames: ["cat", "dog"],
      template: "a photo of a {}.",
      textFeatures: Float32Array.of(0.5, -0.25, 1, 0),
    },
  };
}

describe("encodeMask", () => {
  it("round-trips every field", () => {
    const input = sampleInput();
    const mask = decodeMask(encodeMask(input));
    expect(mask.version).toBe(1);
    expect(mask.baseModel).toEqual(input.baseModel);
    expect(mask.recipe).toEqual(input.recipe);
    expect(mask.metrics).toEqual(input.metrics);
    expect(mask.tensorNames).toEqual(["a", "b", "c"]);
    for (const t of input.tensors) {
      const decoded = mask.tensor(t.name);
      expect(decoded.shape).toEqual(t.shape);
      expect([...decoded.bits()]).toEqual([...t.bits]);
      expect(decoded.zeros).toBe(countZeros(t.bits, decoded.numel));
    }
    expect(mask.head?.classNames).toEqual(["cat", "dog"]);
    expect(mask.head?.dim).toBe(2);
    expect([...(mask.head?.textFeatures ?? [])]).toEqual([0.5, -0.25, 1, 0]);
    expect(mask.toInput()).toEqual(input);
  });

  it("stores each tensor in the smaller encoding", () => {
    const mask = decodeMask(encodeMask(sampleInput()));
    expect(mask.tensor("a").encoding).toBe("golomb"); // 3% off
    expect(mask.tensor("b").encoding).toBe("bitmap"); // 50% off
    expect(mask.tensor("c").encoding).toBe("golomb"); // 98% off: positions of the kept entries
    for (const t of mask.tensors) expect(t.encodedBytes).toBeLessThanOrEqual(bitsetByteLength(t.numel));
  });

  it("forces an encoding on request, and an all-kept tensor takes no payload", () => {
    const input = sampleInput();
    for (const encoding of ["bitmap", "golomb"] as const) {
      const mask = decodeMask(encodeMask(input, { encoding }));
      for (const [i, t] of mask.tensors.entries()) {
        expect(t.encoding).toBe(encoding);
        expect([...t.bits()]).toEqual([...input.tensors[i].bits]);
      }
    }
    const kept = encodeTensorBits(Uint8Array.of(0xff, 0xe0), 11);
    expect(kept).toMatchObject({ encoding: "golomb", m: 1, zeros: 0 });
    expect(kept.payload.length).toBe(0);
  });

  it("ignores padding bits in the input", () => {
    const bits = Uint8Array.of(0xff, 0xff); // 10 entries, 6 padding bits set
    const mask = decodeMask(
      encodeMask(
        { baseModel: { name: null, fingerprint: FINGERPRINT }, tensors: [{ name: "w", shape: [10], bits }] },
        { encoding: "bitmap" },
      ),
    );
    expect([...mask.tensor("w").bits()]).toEqual([0xff, 0xc0]);
  });

  it("is deterministic", () => {
    expect(encodeMask(sampleInput())).toEqual(encodeMask(sampleInput()));
  });

  it("rejects inconsistent input with BAD_INPUT", () => {
    const base = sampleInput();
    const variants: MaskInput[] = [
      { ...base, baseModel: { name: "x", fingerprint: "ABC" } },
      { ...base, tensors: [] },
      { ...base, tensors: [base.tensors[0], base.tensors[0]] },
      { ...base, tensors: [{ name: "a", shape: [30, 41], bits: base.tensors[0].bits }] },
      { ...base, tensors: [{ name: "a", shape: [0], bits: new Uint8Array(0) }] },
      { ...base, tensors: [{ name: "a", shape: [1.5], bits: new Uint8Array(1) }] },
      { ...base, head: { classNames: ["a", "b"], template: "", textFeatures: new Float32Array(3) } },
      { ...base, head: { classNames: ["a"], template: "", textFeatures: Float32Array.of(1e6) } },
      { ...base, head: { classNames: [], template: "", textFeatures: new Float32Array(0) } },
      { ...base, recipe: [] as unknown as Record<string, unknown> },
      { ...base, recipe: { big: 1n } },
    ];
    for (const input of variants) expect(errorCode(() => encodeMask(input))).toBe("BAD_INPUT");
  });

  it("enforces the caps with LIMIT_EXCEEDED", () => {
    const base = sampleInput();
    const longName = "x".repeat(1025);
    expect(
      errorCode(() =>
        encodeMask({ ...base, tensors: [{ name: longName, shape: [1], bits: new Uint8Array(1) }] }),
      ),
    ).toBe("LIMIT_EXCEEDED");
    expect(
      errorCode(() =>
        encodeMask({ ...base, tensors: [{ name: "w", shape: [2 ** 16, 2 ** 16], bits: new Uint8Array(1) }] }),
      ),
    ).toBe("LIMIT_EXCEEDED");
    // At the cap: a 1024-byte name is fine.
    const atCap = "y".repeat(1024);
    const mask = decodeMask(
      encodeMask({ ...base, tensors: [{ name: atCap, shape: [1], bits: Uint8Array.of(0x80) }] }),
    );
    expect(mask.tensorNames).toEqual([atCap]);
  });
});
