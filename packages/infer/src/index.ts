export {
  BaseModel,
  type LoadBaseModelOptions,
  loadBaseModel,
  type MaskHandle,
  type Tower,
  type WeightSharing,
} from "./base-model.js";
export {
  type Classification,
  type Classifier,
  type ClassScore,
  type CreateClassifierOptions,
  classProbabilities,
  createClassifier,
  DEFAULT_BATCH_SIZE,
} from "./classifier.js";
export {
  alignToClasses,
  type ConfusedPair,
  type EvaluateImageFolderOptions,
  type EvaluateProgress,
  type EvaluationResult,
  evaluateImageFolder,
  findClass,
  IMAGE_EXTENSIONS,
  type LabelledImages,
  listImageFolder,
} from "./evaluate.js";
export { type ClassifierImage, imagesToBatch } from "./image-batch.js";
export {
  checkMaskAgainstModel,
  type FoldedWeight,
  foldMask,
  modelFingerprint,
  readBaseWeights,
} from "./mask-fold.js";
export {
  CONFIG_FILE,
  type ModelDir,
  type OnnxGraphFile,
  openModelDir,
  TEXT_ONNX,
  VISION_ONNX,
  WEIGHTS_FILE,
} from "./model-dir.js";
export {
  type ExternalDataRef,
  type InitializerSource,
  initializersToInputs,
  type OnnxGraphSummary,
  type OnnxInitializer,
  redirectInitializers,
  summarizeOnnxModel,
} from "./onnx/onnx-model.js";
export { type ExecutionProvider, ensureExecutionProvider } from "./ort-session.js";
export { HttpError } from "./server/http-error.js";
export {
  createInferenceServer,
  DEFAULT_SERVER_LIMITS,
  type InferenceServer,
  type InferenceServerOptions,
  type ServedClassifier,
  type ServerLimits,
} from "./server/inference-server.js";
export { ConcurrencyLimiter, QueueFullError } from "./server/limiter.js";
export {
  type CreateWorkerClassifiersOptions,
  createWorkerClassifiers,
  type MaskSummary,
  type WorkerClassifier,
  type WorkerClassifiers,
  type WorkerImage,
  type WorkerPoolEvent,
} from "./worker-classifier.js";
