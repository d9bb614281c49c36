/**
 * Casts a floating tensor's bytes to the output dtype of a conversion (F16 or F32). Integer and
 * bool tensors pass through unchanged. fp16/bf16 -> fp32 is exact; fp32 -> fp16 rounds to
 * nearest-even as torch does; fp64 goes through fp32 (a double rounding only at exact ties).
 */
import { type DType, fromFloat32, toFloat32 } from "@unmask/clip";

export type OutputDType = "F16" | "F32";

export function isFloating(dtype: DType): boolean {
  return dtype === "F16" || dtype === "F32" || dtype === "BF16" || dtype === "F64";
}

/** The dtype a tensor is written in: `target` for floating tensors, its own otherwise. */
export function outputDtypeOf(dtype: DType, target: OutputDType): DType {
  return isFloating(dtype) ? target : dtype;
}

export function castTensorBytes(
  bytes: Uint8Array,
  from: DType,
  target: OutputDType,
  subject: string,
): Uint8Array {
  const to = outputDtypeOf(from, target);
  if (to === from) return bytes;
  return fromFloat32(toFloat32(bytes, from, subject), to as OutputDType);
}
