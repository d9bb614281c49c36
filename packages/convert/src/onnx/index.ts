export { type OnnxExportOptions, onnxExportStep } from "./convert-step.js";
export {
  type AttributeValue,
  type ExternalBytes,
  float,
  floats,
  GraphBuilder,
  int,
  ints,
  type NodeOptions,
  str,
} from "./graph-builder.js";
export {
  decodeModel,
  encodeModel,
  type ModelMessage,
  OnnxDataType,
} from "./onnx-proto.js";
export { logitsPerImage, maxAbsError, normalizeRows, relativeMaxError } from "./parity.js";
export type { AttentionKernel } from "./residual-block.js";
export { buildTextGraph, causalMask } from "./text-graph.js";
export { BATCH_DIM, buildVisionGraph, type TowerGraphOptions } from "./vision-graph.js";
export {
  MAX_MODEL_PROTO_BYTES,
  ONNX_FILE_NAMES,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  type OnnxProgress,
  type OnnxTower,
  type WriteOnnxModelsOptions,
  type WriteOnnxModelsResult,
  writeOnnxModels,
} from "./write-onnx-models.js";
