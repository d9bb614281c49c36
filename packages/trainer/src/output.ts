/**
 * What a finished run leaves: the mask bits (score > threshold, packed MSB-first, 1 = keep), the
 * .umask bytes (mask-format: base-model fingerprint, classifier head with the text features,
 * recipe, seed, file-list hash, metrics) and the JSON report. Nothing here depends on time except
 * the report's `time` and `imagesPerSecond`, so a resumed run encodes the same .umask bytes.
 */
import { cleanClassName } from "@unmask/clip";
import { countZeros, encodeMask, packAboveThreshold } from "@unmask/mask-format";
import type { EpochRecord } from "./checkpoint.js";
import { CROP_RATIO, CROP_SCALE } from "./data/crop.js";
import type { RmtHyper } from "./engine.js";
import type { EvaluateResult } from "./evaluate.js";
import type { RecipeSettings } from "./options.js";
import type { Prepared } from "./prepare.js";
import {
  reportPathFor,
  sparsityOf,
  type TensorSparsity,
  type TrainRecipe,
  type TrainReport,
} from "./report.js";

export interface RunOutputInput {
  prepared: Prepared;
  /** Final scores per masked tensor. */
  scores: Map<string, Float32Array>;
  preset: string;
  settings: RecipeSettings;
  hyper: RmtHyper;
  engine: string;
  seed: number;
  evaluation: EvaluateResult | null;
  history: EpochRecord[];
  /** The .umask path (null: in memory only) and the model path as given. */
  out: string | null;
  modelPath: string;
  time: TrainReport["time"];
}

export interface RunOutput {
  maskBytes: Uint8Array;
  masks: { name: string; shape: number[]; bits: Uint8Array }[];
  report: TrainReport;
  reportPath: string | null;
}

export function buildRunOutput(input: RunOutputInput): RunOutput {
  const { prepared, hyper, settings, evaluation, history } = input;
  const { engineModel, trainItems } = prepared;
  const masks: RunOutput["masks"] = [];
  const tensors: TensorSparsity[] = [];
  for (const name of engineModel.maskedTensors) {
    const shape = [...(engineModel.weights.get(name)?.shape ?? [])];
    const values = input.scores.get(name) as Float32Array;
    const bits = packAboveThreshold(values, hyper.threshold);
    masks.push({ name, shape, bits });
    tensors.push(sparsityOf(name, shape, countZeros(bits, values.length)));
  }
  const maskEntries = tensors.reduce((a, t) => a + t.entries, 0);
  const switchedOff = tensors.reduce((a, t) => a + t.switchedOff, 0);
  const recipe: TrainRecipe = {
    preset: input.preset,
    ...settings,
    threshold: hyper.threshold,
    scoreInit: hyper.scoreInit,
    regWeight: hyper.regWeight,
    klTemperature: hyper.klTemperature,
    fuseAlpha: hyper.fuseAlpha,
    adam: { beta1: hyper.adamBeta1, beta2: hyper.adamBeta2, eps: hyper.adamEps },
    schedule: "cosine-per-epoch",
    augmentation: {
      crop: "random-resized",
      scale: [...CROP_SCALE] as [number, number],
      ratio: [...CROP_RATIO] as [number, number],
      flip: 0.5,
      cacheSize: prepared.cacheSize,
    },
    maskedTensors: engineModel.maskedTensors,
    templates: prepared.templates,
  };
  const accuracy = {
    zeroShot: evaluation?.zeroShot?.accuracy ?? null,
    masked: evaluation?.masked?.accuracy ?? null,
    testImages: evaluation?.images ?? 0,
  };
  const { seed } = input;
  const { shots, fileListSha256 } = prepared;
  const maskBytes = encodeMask({
    baseModel: { name: prepared.model.modelName, fingerprint: prepared.fingerprint },
    tensors: masks,
    recipe: { ...recipe, engine: input.engine, seed, shots, fileListSha256 },
    metrics: {
      zeroShotAccuracy: accuracy.zeroShot,
      accuracy: accuracy.masked,
      testImages: accuracy.testImages,
      maskedFraction: switchedOff / maskEntries,
      trainImages: trainItems.length,
      finalTrainLoss: history.at(-1)?.loss ?? null,
    },
    head: {
      classNames: prepared.train.classNames.map(cleanClassName),
      template: prepared.templates.join("\n"),
      textFeatures: engineModel.textFeatures.data,
    },
  });
  const trainedImages = history.reduce((a, h) => a + h.images, 0);
  const report: TrainReport = {
    format: "unmask-train-report",
    formatVersion: 1,
    mask: input.out,
    model: {
      path: input.modelPath,
      name: prepared.model.modelName,
      fingerprint: prepared.fingerprint,
      resolution: engineModel.config.imageResolution,
    },
    engine: input.engine,
    seed,
    shots,
    data: {
      train: prepared.train.description,
      test: prepared.test?.description ?? null,
      classes: prepared.train.classNames,
      trainImages: trainItems.length,
      testImages: accuracy.testImages,
    },
    recipe,
    accuracy,
    maskedFraction: switchedOff / maskEntries,
    maskEntries,
    switchedOff,
    tensors,
    history,
    time: input.time,
    imagesPerSecond: input.time.trainSeconds > 0 ? trainedImages / input.time.trainSeconds : 0,
    fileListSha256,
    train: trainItems.map((i) => i.id),
  };
  return { maskBytes, masks, report, reportPath: input.out ? reportPathFor(input.out) : null };
}
