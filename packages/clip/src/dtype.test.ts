import { describe, expect, it } from "vitest";
import { f32ToBf16, f32ToF16, fromFloat32, toFloat32 } from "./dtype.js";

/** Ties of both 16-bit formats, subnormals, overflow, infinities, NaNs of both signs, and a spread. */
const values = Float32Array.from([
  0,
  -0,
  1,
  -1.5,
  1 + 2 ** -11,
  1 + 2 ** -8,
  1 + 3 * 2 ** -8,
  2 ** -20,
  2 ** -130,
  65520,
  3.4e38,
  -3.4e38,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.NaN,
  -Number.NaN,
  ...Array.from({ length: 2000 }, (_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 24) - 12)),
]);

const halves = (bytes: Uint8Array) =>
  Array.from(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2));

describe("fromFloat32", () => {
  it("rounds to bf16 and fp16 value by value as f32ToBf16 and f32ToF16 do", () => {
    expect(halves(fromFloat32(values, "BF16"))).toEqual(Array.from(values, (v) => f32ToBf16(v)));
    expect(halves(fromFloat32(values, "F16"))).toEqual(Array.from(values, (v) => f32ToF16(v)));
  });

  it("reads a view at an offset, and keeps fp32 bytes as they are", () => {
    const view = values.subarray(3, 11);
    expect(halves(fromFloat32(view, "BF16"))).toEqual(Array.from(view, (v) => f32ToBf16(v)));
    expect(toFloat32(fromFloat32(view, "F32"), "F32")).toEqual(view);
  });
});
