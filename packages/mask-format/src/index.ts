export { type ApplyMaskOptions, applyMask, type WeightDType } from "./apply.js";
export {
  allKeptBitset,
  bitsetByteLength,
  clearPadding,
  countOnes,
  countZeros,
  getBit,
  packAboveThreshold,
  packBits,
  setBit,
  unpackBits,
} from "./bitset.js";
export { crc32 } from "./crc32.js";
export {
  type DecodedMask,
  type DecodeOptions,
  decodeMask,
  type MaskHead,
  type MaskTensor,
} from "./decode.js";
export {
  type EncodedTensor,
  type EncodeOptions,
  encodeMask,
  encodeTensorBits,
  type MaskHeadInput,
  type MaskInput,
  type MaskTensorInput,
} from "./encode.js";
export { isUnmaskError, MaskErrorCode, MaskFormatError, UnmaskError } from "./errors.js";
export {
  type DigestProvider,
  FINGERPRINT_DOMAIN,
  type FingerprintOptions,
  type FingerprintTensor,
  fingerprintTensors,
} from "./fingerprint.js";
export { MAX_GOLOMB_M } from "./golomb.js";
export { f16BitsToF32, f32ToF16Bits } from "./half.js";
export {
  FORMAT_VERSION,
  isFingerprint,
  MAGIC,
  MAX_CLASSES,
  MAX_DIMS,
  MAX_FEATURE_DIM,
  MAX_HEADER_BYTES,
  MAX_NAME_BYTES,
  MAX_TENSOR_NUMEL,
  MAX_TENSORS,
  MAX_TOTAL_NUMEL,
  type TensorEncoding,
} from "./header.js";
export { type InspectOptions, inspect, type MaskSummary, type TensorSummary } from "./inspect.js";
export {
  type FromSafetensorsOptions,
  MAX_SAFETENSORS_HEADER_BYTES,
  maskFromSafetensors,
  maskToSafetensors,
} from "./safetensors.js";
export { assertBaseModel, type ValidateOptions, type ValidationResult, validate } from "./validate.js";
