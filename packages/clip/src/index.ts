export { UnmaskError, isUnmaskError } from "@unmask/mask-format";
export { writeFileAtomic, temporaryPathFor } from "./atomic-file.js";
export { type DType, DTYPE_BYTES, isDType, shapeNumel, f16ToF32, f32ToF16, f32ToBf16, toFloat32, fromFloat32 } from "./dtype.js";
export {
  MAX_HEADER_BYTES,
  type TensorEntry,
  type SafetensorsHeader,
  type TensorToWrite,
  type WriteSafetensorsOptions,
  SafetensorsFile,
  openSafetensors,
  parseSafetensors,
  parseSafetensorsHeader,
  readSafetensorsFloat32,
  layoutSafetensors,
  writeSafetensors,
  encodeSafetensors,
} from "./safetensors.js";
export { type ClipConfig, type ShapeMap, type ModelDirConfigJson, inferConfig, vitConfig, configToJson, configFromJson, CLIP_MEAN, CLIP_STD } from "./config.js";
export { VISION_BLOCK_PREFIX, TEXT_BLOCK_PREFIX, BLOCK_TENSORS, vitTensorNames, defaultMaskedTensors, type HfSourcePlan, planFromHf, hfNameFor, HF_IGNORED_KEYS } from "./keys.js";
