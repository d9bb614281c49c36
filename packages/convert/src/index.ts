export { canonicalizeNames, DROPPED_EXTRAS, selectCanonicalTensors } from "./canonical-names.js";
export {
  type Checkpoint,
  type CheckpointFormat,
  type CheckpointTensor,
  MAX_TENSOR_ALIAS_FACTOR,
  openCheckpoint,
  openTorchFile,
} from "./checkpoint.js";
export {
  CONFIG_FILE,
  type ConvertOptions,
  type ConvertProgress,
  type ConvertResult,
  type ConvertStep,
  type ConvertStepContext,
  convert,
  WEIGHTS_FILE,
} from "./convert.js";
export type { ConvertErrorCode } from "./errors.js";
export { canonicalToHf, type LayoutTensor, transpose2d } from "./hf-layout.js";
export {
  canonicalNameForMaskKey,
  type ImportMaskOptions,
  type ImportMaskResult,
  importMask,
  importMaskToFile,
  MASK_KEY_SUFFIX,
  type OfficialMaskEntry,
  readOfficialMasks,
} from "./import-mask.js";
export { OFFICIAL_RELEASES, type OfficialRelease, officialReleaseFor } from "./official-models.js";
export {
  type AttentionKernel,
  ONNX_FILE_NAMES,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  type OnnxExportOptions,
  type OnnxProgress,
  type OnnxTower,
  onnxExportStep,
  type WriteOnnxModelsOptions,
  type WriteOnnxModelsResult,
  writeOnnxModels,
} from "./onnx/index.js";
export {
  DEFAULT_PICKLE_LIMITS,
  PickleDict,
  type PickleGlobal,
  type PickleLimits,
  PickleObject,
  type PickleValue,
  type UnpickleOptions,
  unpickle,
} from "./pickle-vm.js";
export { sha256File, sha256FileInWorker } from "./sha256-file.js";
export { extractStateDict } from "./state-dict.js";
export { torchGlobals } from "./torch-globals.js";
export { openTorchLegacy } from "./torch-legacy.js";
export { readTensorBytes, type StorageRef, type TensorRef } from "./torch-tensor.js";
export { MAX_PICKLE_BYTES, openTorchZip, type TorchPickleFile } from "./torch-zip.js";
export { ZipArchive, type ZipEntry } from "./zip-reader.js";
