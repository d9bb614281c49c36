/**
 * Everything before the first step of a run: the model, the masked tensors and their fingerprint,
 * the datasets and the few-shot file list, the prompt templates and text features, the uint8 image
 * cache, and the run's identity (the hash a checkpoint must match to be resumed).
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import {
  buildClassTextFeatures,
  DEFAULT_TEMPLATE,
  defaultMaskedTensors,
  type EncodeText,
  templateForDataset,
  UnmaskError,
} from "@unmask/clip";
import { fingerprintTensors } from "@unmask/mask-format";
import type { Dataset, DatasetItem } from "./data/dataset.js";
import {
  fileListSha256,
  readTrainList,
  sampleFewShot,
  selectTrainList,
  type TrainList,
} from "./data/few-shot.js";
import { type BuiltImageCache, buildImageCache } from "./data/image-cache.js";
import type { ImageIo } from "./data/image-io.js";
import { alignClasses, resolveData } from "./data/resolve.js";
import type { EngineModel, FloatTensor, RmtHyper } from "./engine.js";
import { type LoadedModel, loadModelDir, readModelConfig } from "./model-dir.js";
import type { OnTrainProgress } from "./progress.js";

/** Which weights get a mask: an explicit list of canonical names, or the recipe's set with options. */
export type MaskedTensorsOption = string[] | { mlp?: boolean; blocks?: number[]; patchEmbedding?: boolean };

export interface PrepareOptions {
  model: string;
  data: string | Dataset;
  /** A path or dataset to evaluate on; null for none; default: the test split of `data`. */
  testData?: string | Dataset | null;
  shots: number;
  seed: number;
  trainList?: string | TrainList;
  maskedTensors?: MaskedTensorsOption;
  templates?: string[];
  cacheSize?: number;
  io: ImageIo;
  encodeText: (model: LoadedModel) => EncodeText;
  signal?: AbortSignal;
  onProgress?: OnTrainProgress;
}

export interface Prepared {
  model: LoadedModel;
  engineModel: EngineModel;
  fingerprint: string;
  train: Dataset;
  test: Dataset | null;
  trainItems: DatasetItem[];
  /** K of the few-shot set: the sampled K, the file list's `shots`, or null when a list does not say. */
  shots: number | null;
  fileListSha256: string;
  templates: string[];
  /**
   * The training images' uint8 cache, possibly still decoding when prepareRun returns (so that
   * the engine starts meanwhile). A run that stops before awaiting it calls stopDecoding.
   */
  cache: Promise<BuiltImageCache>;
  /** Aborts the decoding and waits for it to settle (its error, if any, is dropped). */
  stopDecoding: () => Promise<void>;
  cacheSize: number;
}

/** CoOp split files name their dataset: split_zhou_OxfordPets.json -> OxfordPets. */
export function datasetNameOf(data: string | Dataset): string | null {
  if (typeof data !== "string") return null;
  const match = /^split_zhou_(.+)\.json$/i.exec(basename(data));
  return match ? match[1] : null;
}

function resolveMaskedTensors(model: LoadedModel, option: MaskedTensorsOption | undefined): string[] {
  const names = Array.isArray(option) ? option : defaultMaskedTensors(model.config, option ?? {});
  if (names.length === 0)
    throw new UnmaskError("BAD_OPTION", "no tensors to mask", { subject: "maskedTensors" });
  for (const name of names) {
    const t = model.vision.get(name);
    if (!t)
      throw new UnmaskError("UNKNOWN_TENSOR", `${model.weightsPath}: no vision tensor ${name} to mask`, {
        subject: name,
      });
    if (t.shape.length < 2)
      throw new UnmaskError("BAD_OPTION", `${name} is not a weight matrix (shape [${t.shape}])`, {
        subject: name,
      });
  }
  if (new Set(names).size !== names.length)
    throw new UnmaskError("BAD_OPTION", "a masked tensor is listed twice", { subject: "maskedTensors" });
  return names;
}

async function resolveDatasets(options: PrepareOptions): Promise<{ train: Dataset; test: Dataset | null }> {
  const { data, testData } = options;
  let train: Dataset;
  let test: Dataset | null = null;
  if (typeof data === "string") {
    const resolved = await resolveData(typeof testData === "string" ? { data, testData } : { data });
    train = resolved.train;
    test = resolved.test;
  } else train = data;
  if (testData === null) test = null;
  else if (testData && typeof testData !== "string") test = testData;
  return { train, test: test ? alignClasses(test, train.classNames) : null };
}

export async function prepareRun(options: PrepareOptions): Promise<Prepared> {
  const { io, onProgress } = options;
  const say = (stage: "model" | "data" | "text" | "cache", message: string, done = 0, total = 1) =>
    onProgress?.({ status: "prepare", stage, done, total, message });

  // The training images decode (libuv's pool, sharp) while the model loads, its masked tensors
  // are fingerprinted, the class names are encoded and (train.ts) the engine starts: only the
  // cache size is needed first.
  say("model", `reading ${options.model}`);
  const { config } = await readModelConfig(options.model);
  say("data", "listing images");
  const { train, test } = await resolveDatasets(options);
  let trainItems: DatasetItem[];
  let shots: number | null = options.shots;
  if (options.trainList !== undefined) {
    const list =
      typeof options.trainList === "string" ? await readTrainList(options.trainList) : options.trainList;
    shots = list.shots ?? null;
    trainItems = selectTrainList(
      train,
      list,
      typeof options.trainList === "string" ? options.trainList : "train list",
    );
  } else trainItems = sampleFewShot({ dataset: train, shots: options.shots, seed: options.seed });

  const cacheSize = options.cacheSize ?? config.imageResolution;
  const stopDecoding = new AbortController();
  const signal = options.signal
    ? AbortSignal.any([options.signal, stopDecoding.signal])
    : stopDecoding.signal;
  const decoding = buildImageCache({
    items: trainItems,
    size: cacheSize,
    io,
    signal,
    onImage: (done, total) => {
      if (done === total || done % 64 === 0) say("cache", "decoding training images", done, total);
    },
  });
  decoding.catch(() => undefined); // awaited by the caller, or abandoned with the error that stops the run
  const stop = async () => {
    stopDecoding.abort();
    await decoding.catch(() => undefined);
  };

  try {
    say("model", `loading ${options.model}`);
    const model = await loadModelDir(options.model);
    const maskedTensors = resolveMaskedTensors(model, options.maskedTensors);
    const fingerprint = await fingerprintTensors(
      maskedTensors.map((name) => {
        const t = model.vision.get(name) as FloatTensor;
        return { name, shape: t.shape, values: t.data };
      }),
    );
    options.signal?.throwIfAborted();

    const datasetName = datasetNameOf(options.data);
    const templates = options.templates ?? [datasetName ? templateForDataset(datasetName) : DEFAULT_TEMPLATE];
    say("text", `encoding ${train.classNames.length} class names`);
    const textFeatures: FloatTensor = {
      shape: [train.classNames.length, model.config.embedDim],
      data: await buildClassTextFeatures({
        classNames: train.classNames,
        templates,
        encodeText: options.encodeText(model),
        contextLength: model.config.contextLength,
      }),
    };
    options.signal?.throwIfAborted();
    return {
      model,
      engineModel: {
        config: model.config,
        weights: model.vision,
        maskedTensors,
        textFeatures,
        logitScale: model.logitScale,
      },
      fingerprint,
      train,
      test,
      trainItems,
      shots,
      fileListSha256: fileListSha256(trainItems.map((i) => i.id)),
      templates,
      cache: decoding,
      stopDecoding: stop,
      cacheSize,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The settings that determine a run's result bit for bit. */
export interface RunIdentity {
  fingerprint: string;
  maskedTensors: string[];
  classNames: string[];
  templates: string[];
  fileListSha256: string;
  seed: number;
  epochs: number;
  batchSize: number;
  lr: number;
  hyper: RmtHyper;
  cacheSize: number;
  engine: string;
}

/** SHA-256 of the identity's canonical JSON (keys in the order above). */
export function identityHash(identity: RunIdentity): string {
  const ordered = {
    format: "unmask-run-1",
    ...identity,
    hyper: Object.fromEntries(Object.entries(identity.hyper).sort(([a], [b]) => (a < b ? -1 : 1))),
  };
  return createHash("sha256").update(JSON.stringify(ordered)).digest("hex");
}
