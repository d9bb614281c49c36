export { Arena } from "./arena.js";
export { attentionBackward, attentionForward } from "./attention.js";
export { augmentCrops } from "./augment.js";
export {
  type BlockActivations,
  type BlockDims,
  type BlockGradients,
  type BlockWeights,
  blockBackward,
  blockForward,
} from "./block.js";
export { type CpuEngineOptions, createCpuEngine } from "./cpu-engine.js";
export { embedBackward, embedForward } from "./embed.js";
export { gemm, gemmReference } from "./gemm.js";
export { type HeadActivations, type HeadWeights, headBackward, headForward } from "./head.js";
export { type CanonicalWeights, readHfWeightsFloat32 } from "./hf-weights.js";
export { LAYERNORM_EPS, layernormBackward, layernormForward } from "./layernorm.js";
export { matmulBackward, matmulForward } from "./matmul.js";
export { patchifyForward } from "./patchify.js";
export { quickGeluBackward, quickGeluForward } from "./quick-gelu.js";
export { type RandomVitOptions, randomImages, randomVitModel } from "./random-model.js";
export { applyMask, maskedUpdate } from "./update.js";
