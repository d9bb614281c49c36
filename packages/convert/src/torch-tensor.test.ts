import { isUnmaskError } from "@unmask/clip";
import { describe, expect, it } from "vitest";
import { isContiguous, makeTensorRef, readTensorBytes, type StorageRef } from "./torch-tensor.js";

function storage(values: number[], dtype: "F32" | "F16" = "F32"): StorageRef {
  const bytes =
    dtype === "F32"
      ? new Uint8Array(Float32Array.from(values).buffer)
      : new Uint8Array(Uint16Array.from(values).buffer);
  return {
    kind: "torch-storage",
    key: "0",
    dtype,
    numel: values.length,
    bytes: { byteLength: bytes.byteLength, read: async (o, n) => bytes.slice(o, o + n) },
  };
}

const f32 = (bytes: Uint8Array) => [
  ...new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4),
];

describe("torch tensors", () => {
  it("reads a contiguous slice at an offset", async () => {
    const t = makeTensorRef([storage([0, 1, 2, 3, 4, 5, 6, 7]), 2, [2, 2], [2, 1]], "t");
    expect(f32(await readTensorBytes(t))).toEqual([2, 3, 4, 5]);
  });

  it("copies a non-contiguous (transposed) tensor into row-major order", async () => {
    // storage holds [[0,1,2],[3,4,5]]; the tensor is its transpose [3,2] with stride [1,3].
    const t = makeTensorRef([storage([0, 1, 2, 3, 4, 5]), 0, [3, 2], [1, 3]], "t");
    expect(isContiguous(t.shape, t.stride)).toBe(false);
    expect(f32(await readTensorBytes(t))).toEqual([0, 3, 1, 4, 2, 5]);
  });

  it("treats size-1 dimensions as contiguous whatever their stride", () => {
    expect(isContiguous([1, 4], [99, 1])).toBe(true);
    expect(isContiguous([], [])).toBe(true);
  });

  it("swaps bytes of a big-endian archive", async () => {
    const t = makeTensorRef([storage([0x0102, 0x0304], "F16"), 0, [2], [1]], "t");
    const bytes = await readTensorBytes(t, "big");
    expect([...new Uint16Array(bytes.buffer)]).toEqual([0x0201, 0x0403]);
  });

  it("refuses tensors that reach outside their storage or have bad sizes", () => {
    const code = (args: unknown[]) => {
      try {
        makeTensorRef(args, "t");
      } catch (error) {
        return isUnmaskError(error) ? error.code : "other";
      }
      return undefined;
    };
    expect(code([storage([0, 1, 2, 3]), 0, [2, 2], [2, 1]])).toBeUndefined();
    expect(code([storage([0, 1, 2, 3]), 1, [2, 2], [2, 1]])).toBe("TORCH_BAD_TENSOR");
    expect(code([storage([0, 1, 2, 3]), 0, [5], [1]])).toBe("TORCH_BAD_TENSOR");
    expect(code([storage([0, 1, 2, 3]), 0, [2], [-1]])).toBe("TORCH_BAD_TENSOR");
    expect(code([storage([0, 1, 2, 3]), 0, [2, 2], [1]])).toBe("TORCH_BAD_TENSOR");
    expect(code([storage([0, 1, 2, 3]), -1, [1], [1]])).toBe("TORCH_BAD_TENSOR");
    expect(code(["not a storage", 0, [1], [1]])).toBe("TORCH_BAD_TENSOR");
  });
});
