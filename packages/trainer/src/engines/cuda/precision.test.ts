import { f32ToBf16, f32ToF16, isUnmaskError } from "@unmask/clip";
import { describe, expect, it } from "vitest";
import { withEnv } from "../../../bench/device/with-env.js";
import { gemmCudaType } from "./cublas.js";
import { fatbinPath, readFatbin } from "./kernels.js";
import { fatbinName, lossScale, tensorMapDataType, toLowp } from "./precision.js";

/** Values that exercise the roundings: ties, subnormals of both formats, overflow, NaN, signs. */
const specials = Float32Array.of(
  0,
  -0,
  1,
  -1.5,
  1 + 2 ** -11, // an fp16 tie
  1 + 2 ** -8, // a bf16 tie
  2 ** -20, // fp16 subnormal
  2 ** -25, // below half fp16's smallest subnormal: 0
  65504,
  65520, // rounds to fp16 infinity
  3.4e38,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  -1e-30,
);

describe("precision", () => {
  it("rounds weights to fp16 or bf16 as the kernels' conversions do (nearest, ties to even)", () => {
    const random = Float32Array.from(
      { length: 4096 },
      (_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 20) - 10),
    );
    for (const values of [specials, random]) {
      expect(Array.from(toLowp("fp16", values))).toEqual(Array.from(values, (v) => f32ToF16(v)));
      expect(Array.from(toLowp("bf16", values))).toEqual(Array.from(values, (v) => f32ToBf16(v)));
    }
    expect(toLowp("fp16", Float32Array.of(65520))[0]).toBe(0x7c00);
    expect(toLowp("fp16", Float32Array.of(2 ** -20))[0]).toBe(0x0010);
  });

  it("scales fp16's losses by the power of two at or above the batch, bf16's not at all", () => {
    expect([1, 2, 3, 32, 255, 256, 257].map((b) => lossScale("fp16", b))).toEqual([
      1, 2, 4, 32, 256, 256, 512,
    ]);
    expect([1, 32, 256, 257].map((b) => lossScale("bf16", b))).toEqual([1, 1, 1, 1]);
  });

  it("names the cuBLAS and TMA element types and the fatbin of each precision", () => {
    // cudaDataType: CUDA_R_16F 2, CUDA_R_16BF 14, CUDA_R_32F 0
    expect([
      gemmCudaType(undefined, "fp16"),
      gemmCudaType("lowp", "bf16"),
      gemmCudaType("f32", "fp16"),
    ]).toEqual([2, 14, 0]);
    expect([tensorMapDataType("fp16"), tensorMapDataType("bf16")]).toEqual([6, 9]);
    expect([fatbinName("fp16"), fatbinName("bf16")]).toEqual(["unmask-fp16.fatbin", "unmask.fatbin"]);
    expect(fatbinPath("fp16")).toMatch(/kernels\/unmask-fp16\.fatbin$/);
  });

  it("refuses a missing fatbin with CUDA_UNAVAILABLE naming the file and the variable that moves it", () => {
    const missing = "/nonexistent/unmask-fp16.fatbin";
    try {
      withEnv({ UNMASK_CUDA_FATBIN_FP16: missing }, () => readFatbin("fp16"));
      expect.unreachable();
    } catch (error) {
      expect(isUnmaskError(error, "CUDA_UNAVAILABLE")).toBe(true);
      expect((error as Error).message).toContain(missing);
      expect((error as Error).message).toContain("UNMASK_CUDA_FATBIN_FP16");
    }
  });

  it("ships both fatbins", () => {
    expect(readFatbin("bf16").length).toBeGreaterThan(100_000);
    expect(readFatbin("fp16").length).toBeGreaterThan(100_000);
  });
});
