export {
  type Checkpoint,
  type CheckpointState,
  type EpochRecord,
  loadCheckpoint,
  saveCheckpoint,
} from "./checkpoint.js";
export { type CoopSplitOptions, loadCoopSplit, parseCoopSplit, type SplitName } from "./data/coop-split.js";
export { CROP_RATIO, CROP_SCALE, type CropBox, randomResizedCropBox } from "./data/crop.js";
export { countPerClass, type Dataset, type DatasetItem, type RawImage } from "./data/dataset.js";
export {
  fileListSha256,
  parseTrainList,
  readTrainList,
  sampleFewShot,
  selectTrainList,
  type TrainList,
  writeTrainList,
} from "./data/few-shot.js";
export { type BuiltImageCache, buildImageCache } from "./data/image-cache.js";
export { IMAGE_EXTENSIONS, type ImageFolderOptions, loadImageFolder } from "./data/image-folder.js";
export { clipImageIo, type ImageIo } from "./data/image-io.js";
export { type InMemoryDatasetOptions, inMemoryDataset } from "./data/in-memory.js";
export { type RandomState, SeededRandom } from "./data/random.js";
export { alignClasses, loadDataPath, type ResolvedData, resolveData } from "./data/resolve.js";
export { EpochSampler, type SampledBatch, type SamplerState, stepsPerEpoch } from "./data/sampler.js";
export {
  type DataParallel,
  type DistributedEngineOptions,
  type GradientReducer,
  identityReducer,
  joinDataParallel,
  type LaunchOptions,
  type LaunchResult,
  launchWorkers,
  Nccl,
  parseWorldEnv,
  planBuckets,
  type ReducerContext,
  type RunTrainWorkerOptions,
  rendezvous,
  runTrainWorker,
  runWorker,
  shardRange,
  startTcpStore,
  TcpStoreClient,
  type TrainRankContext,
  type WorkerContext,
  type WorldInfo,
} from "./distributed/index.js";
export * from "./engine.js";
export { type EngineName, engineFactory } from "./engine-factory.js";
export {
  Arena,
  augmentCrops,
  type CanonicalWeights,
  createCpuEngine,
  gemm,
  gemmReference,
  type RandomVitOptions,
  randomImages,
  randomVitModel,
  readHfWeightsFloat32,
} from "./engines/cpu/index.js";
export {
  type Accuracy,
  type EvaluatedModel,
  type EvaluateOptions,
  type EvaluateResult,
  evaluate,
} from "./evaluate.js";
export { type LoadedModel, loadModelDir } from "./model-dir.js";
export { cosineLr, PRESETS, type PresetName, presetSettings, type RecipeSettings } from "./options.js";
export { identityHash, type MaskedTensorsOption, type RunIdentity } from "./prepare.js";
export type { OnTrainProgress, PrepareStage, TrainProgress } from "./progress.js";
export {
  reportPathFor,
  type TensorSparsity,
  type TrainRecipe,
  type TrainReport,
  writeReport,
} from "./report.js";
export { type AdamSettings, adamUpdate } from "./rmt/adam.js";
export { GDR_EPS, gdrKeepProbability, gradientDropout } from "./rmt/gradient-dropout.js";
export { type LogitLossInput, type LogitLossOutput, logitLosses } from "./rmt/losses.js";
export { l2Norm, regularizerGradientScale, regularizerLoss } from "./rmt/regularizer.js";
export { cosineLearningRate } from "./rmt/schedule.js";
export { type EncodeTextCpuOptions, encodeTextCpu, type TextTowerModel } from "./text-encoder.js";
export { type TrainOptions, type TrainResult, train } from "./train.js";
