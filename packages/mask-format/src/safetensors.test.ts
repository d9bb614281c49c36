import { readFileSync } from "node:fs";
import { fixturePath } from "@unmask/fixtures";
import { describe, expect, it } from "vitest";
import { errorCode, FINGERPRINT, randomBits, rng } from "../test/helpers.js";
import { countZeros, unpackBits } from "./bitset.js";
import { decodeMask } from "./decode.js";
import { encodeMask, type MaskInput } from "./encode.js";
import { maskFromSafetensors, maskToSafetensors } from "./safetensors.js";

function sample(): MaskInput {
  const random = rng(51);
  return {
    baseModel: { name: "tiny", fingerprint: FINGERPRINT },
    tensors: [
      { name: "z.last", shape: [4, 5], bits: randomBits(20, 0.2, random) },
      { name: "a.first", shape: [3], bits: randomBits(3, 0.5, random) },
    ],
    recipe: { lr: 8e-5 },
    metrics: { accuracy: 0.5 },
  };
}

/** Header JSON of a safetensors file. */
function headerOf(
  bytes: Uint8Array,
): Record<string, { dtype?: string; shape?: number[]; data_offsets?: number[] }> {
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
  return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
}

function withHeader(header: unknown, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe("safetensors interop", () => {
  it("writes U8 0/1 tensors shaped like the weights, data 8-byte aligned", () => {
    const input = sample();
    const bytes = maskToSafetensors(input);
    const header = headerOf(bytes);
    const length = new DataView(bytes.buffer).getUint32(0, true);
    expect(length % 8).toBe(0);
    expect(header["z.last"]).toEqual({ dtype: "U8", shape: [4, 5], data_offsets: [0, 20] });
    expect(header.__metadata__).toMatchObject({
      format: "pt",
      "umask.base_model": "tiny",
      "umask.fingerprint": FINGERPRINT,
      "umask.tensor_order": '["z.last","a.first"]',
    });
    expect([...bytes.subarray(8 + length, 8 + length + 20)]).toEqual([
      ...unpackBits(input.tensors[0].bits, 20),
    ]);
  });

  it("round-trips through safetensors, from an input or a decoded mask", () => {
    const input = sample();
    expect(maskFromSafetensors(maskToSafetensors(input))).toEqual(input);
    const decoded = decodeMask(encodeMask(input));
    expect(maskFromSafetensors(maskToSafetensors(decoded))).toEqual(input);
  });

  it("imports the official R-AMT fixture's unpacked masks", () => {
    const bytes = new Uint8Array(readFileSync(fixturePath("official-rmt/expected-masks.safetensors")));
    expect(errorCode(() => maskFromSafetensors(bytes))).toBe("BAD_INPUT"); // no fingerprint in it
    const input = maskFromSafetensors(bytes, { baseModel: { name: "micro-clip", fingerprint: FINGERPRINT } });
    expect(input.tensors[0].name).toBe("visual.conv1.weight");
    expect(input.tensors[0].shape).toEqual([192, 3, 4, 4]);
    let numel = 0;
    let zeros = 0;
    for (const t of input.tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      numel += n;
      zeros += countZeros(t.bits, n);
    }
    expect(numel).toBe(893_952);
    expect(zeros / numel).toBeCloseTo(0.0312, 3);
    const mask = decodeMask(encodeMask(input));
    expect(mask.tensors.every((t) => t.encoding === "golomb")).toBe(true);
    expect(mask.byteLength).toBeLessThan(numel / 8 / 3);
  });

  it("accepts BOOL tensors and orders by data offset without metadata", () => {
    const file = withHeader(
      {
        second: { dtype: "BOOL", shape: [2], data_offsets: [3, 5] },
        first: { dtype: "U8", shape: [3], data_offsets: [0, 3] },
      },
      Uint8Array.of(1, 0, 1, 0, 1),
    );
    const input = maskFromSafetensors(file, { baseModel: { name: null, fingerprint: FINGERPRINT } });
    expect(input.tensors.map((t) => t.name)).toEqual(["first", "second"]);
    expect([...input.tensors[0].bits]).toEqual([0b10100000]);
    expect([...input.tensors[1].bits]).toEqual([0b01000000]);
  });

  describe("hostile input", () => {
    const baseModel = { name: null, fingerprint: FINGERPRINT };
    const cases: [string, () => Uint8Array][] = [
      ["shorter than 8 bytes", () => Uint8Array.of(1, 2, 3)],
      ["header length past the end", () => Uint8Array.of(0xff, 0, 0, 0, 0, 0, 0, 0)],
      ["64-bit header length", () => Uint8Array.of(0, 0, 0, 0, 1, 0, 0, 0)],
      ["not JSON", () => Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7b)],
      ["no tensors", () => withHeader({ __metadata__: {} }, new Uint8Array(0))],
      [
        "float tensor",
        () => withHeader({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      ],
      [
        "value 2",
        () => withHeader({ w: { dtype: "U8", shape: [2], data_offsets: [0, 2] } }, Uint8Array.of(1, 2)),
      ],
      [
        "offsets past the data",
        () => withHeader({ w: { dtype: "U8", shape: [4], data_offsets: [0, 4] } }, new Uint8Array(2)),
      ],
      [
        "size disagrees with shape",
        () => withHeader({ w: { dtype: "U8", shape: [3], data_offsets: [0, 2] } }, new Uint8Array(2)),
      ],
      [
        "metadata not strings",
        () =>
          withHeader(
            { __metadata__: { a: 1 }, w: { dtype: "U8", shape: [1], data_offsets: [0, 1] } },
            Uint8Array.of(1),
          ),
      ],
      [
        "tensor order that lies",
        () =>
          withHeader(
            {
              __metadata__: { "umask.tensor_order": '["x"]' },
              w: { dtype: "U8", shape: [1], data_offsets: [0, 1] },
            },
            Uint8Array.of(1),
          ),
      ],
    ];
    for (const [what, make] of cases)
      it(`${what}: BAD_SAFETENSORS`, () =>
        expect(errorCode(() => maskFromSafetensors(make(), { baseModel }))).toBe("BAD_SAFETENSORS"));
  });
});
