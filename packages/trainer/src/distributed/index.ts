export {
  type Bucket,
  type BucketPlan,
  type BucketPlanOptions,
  type BucketSlot,
  type BucketTensor,
  backwardOrder,
  bucketView,
  DEFAULT_BUCKET_BYTES,
  GRADIENT_SIGNALS,
  planBuckets,
  slotViews,
} from "./buckets.js";
export {
  type DataParallel,
  type DataParallelOptions,
  joinDataParallel,
  tensorsDigest,
} from "./data-parallel.js";
export {
  bucketSpans,
  cudaStreamOps,
  type DistributedEngineOptions,
  type GradientReducer,
  identityReducer,
  NcclGradientReducer,
  type NcclReducerOptions,
  type ReducerContext,
  type ReducerStreams,
} from "./gradient-reducer.js";
export {
  DEFAULT_GRACE_MS,
  type LaunchOptions,
  type LaunchResult,
  launchWorkers,
  type WorkerOutputLine,
} from "./launcher.js";
export {
  type AllReduceArgs,
  Nccl,
  NcclCommunicator,
  ncclSearchDirs,
  type OpenNcclOptions,
} from "./nccl.js";
export {
  type Env,
  listenAddress,
  MAX_WORLD_SIZE,
  NCCL_UNIQUE_ID_BYTES,
  parseWorldEnv,
  type Rendezvous,
  type RendezvousOptions,
  rendezvous,
  type WorldInfo,
  worldEnv,
} from "./rendezvous.js";
export { type RunTrainWorkerOptions, runTrainWorker } from "./run-train-worker.js";
export {
  combineShardResults,
  reduceWeight,
  type ShardRange,
  shardBatch,
  shardRange,
  shardRanges,
} from "./sharding.js";
export { MAX_KEY_BYTES, MAX_VALUE_BYTES } from "./store-protocol.js";
export {
  DEFAULT_STORE_TIMEOUT_MS,
  startTcpStore,
  TcpStoreClient,
  type TcpStoreClientOptions,
  type TcpStoreServer,
  type TcpStoreServerOptions,
} from "./tcp-store.js";
export type { TrainRankContext } from "./train-rank.js";
export {
  INTERRUPTED_EXIT_CODE,
  type RunWorkerOptions,
  runWorker,
  type WorkerContext,
  type WorkerMessage,
} from "./worker.js";
