/**
 * What the engine's precision (EngineOptions.precision) decides on the host: which fatbin the
 * kernels come from (kernels/common.cuh's `lowp`, built twice), the cudaDataType of cuBLAS's
 * 16-bit operands (cublas.ts), the TMA element type (driver.ts), how the weights are rounded on
 * upload, and the loss scale.
 */
import { fromFloat32 } from "@unmask/clip";
import { DEFAULT_PRECISION, type Precision } from "../../engine.js";

export { DEFAULT_PRECISION, type Precision };

/** The fatbin built for `precision` (scripts/build-kernels.mjs). */
export function fatbinName(precision: Precision): string {
  return precision === "fp16" ? "unmask-fp16.fatbin" : "unmask.fatbin";
}

/** CUtensorMapDataType of a 16-bit operand: CU_TENSOR_MAP_DATA_TYPE_FLOAT16 (6) or _BFLOAT16 (9). */
export function tensorMapDataType(precision: Precision): number {
  return precision === "fp16" ? 6 : 9;
}

/**
 * The factor the loss gradients are multiplied by in head_step, and the weight gradients divided
 * by in mask_update. bf16 has fp32's exponent range: 1. fp16's smallest normal is 2^-14, and a
 * batch-mean loss gives each image 1/B of its gradient: scaled by the power of two at or above
 * the largest batch, every image's gradient keeps its own size whatever the batch (the fp16
 * simulation of bench/device/NOTES.md round 11 ran the recipe's batch of 32 unscaled), and stays
 * far below fp16's largest value, 65,504. A power of two leaves the fp32 arithmetic around it
 * exact.
 */
export function lossScale(precision: Precision, batch: number): number {
  return precision === "fp16" ? 2 ** Math.ceil(Math.log2(Math.max(1, batch))) : 1;
}

/** fp32 values rounded to the 16-bit type (round to nearest even, as the kernels' conversions). */
export function toLowp(precision: Precision, data: Float32Array): Uint16Array {
  return new Uint16Array(fromFloat32(data, precision === "fp16" ? "F16" : "BF16").buffer);
}
