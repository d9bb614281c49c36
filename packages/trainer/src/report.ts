/**
 * The JSON report written beside a trained mask: accuracy before/after, how much of each tensor
 * is switched off, the time split and throughput, the per-epoch history, and the training file
 * list itself (top-level `train`, so a report can be handed back as `--train-list`).
 */
import { writeFileAtomic } from "@unmask/clip";
import type { EpochRecord } from "./checkpoint.js";

export interface TensorSparsity {
  name: string;
  shape: number[];
  entries: number;
  /** Entries whose mask bit is 0 (score <= threshold). */
  switchedOff: number;
  /** switchedOff / entries. */
  fraction: number;
}

export interface TrainRecipe {
  preset: string;
  epochs: number;
  batchSize: number;
  lr: number;
  lambda: number;
  threshold: number;
  scoreInit: number;
  regWeight: number;
  klTemperature: number;
  fuseAlpha: number;
  adam: { beta1: number; beta2: number; eps: number };
  schedule: "cosine-per-epoch";
  augmentation: {
    crop: "random-resized";
    scale: [number, number];
    ratio: [number, number];
    flip: 0.5;
    cacheSize: number;
  };
  maskedTensors: string[];
  templates: string[];
}

export interface TrainReport {
  format: "unmask-train-report";
  formatVersion: 1;
  mask: string | null;
  model: { path: string; name: string | null; fingerprint: string; resolution: number };
  engine: string;
  seed: number;
  shots: number | null;
  data: { train: string; test: string | null; classes: string[]; trainImages: number; testImages: number };
  recipe: TrainRecipe;
  /** Top-1 accuracy on the test set in [0, 1]; null without a test set. */
  accuracy: { zeroShot: number | null; masked: number | null; testImages: number };
  /** Fraction of all mask entries switched off. */
  maskedFraction: number;
  maskEntries: number;
  switchedOff: number;
  tensors: TensorSparsity[];
  history: EpochRecord[];
  time: { prepareSeconds: number; trainSeconds: number; evaluateSeconds: number; totalSeconds: number };
  /** Training images (student + teacher + update) per second of training time. */
  imagesPerSecond: number;
  fileListSha256: string;
  /** The training files (ids relative to the data root), in cache order. */
  train: string[];
}

export function sparsityOf(name: string, shape: number[], zeros: number): TensorSparsity {
  const entries = shape.reduce((a, b) => a * b, 1);
  return { name, shape, entries, switchedOff: zeros, fraction: entries === 0 ? 0 : zeros / entries };
}

/** The report path beside a mask: `mask.umask` -> `mask.report.json`. */
export function reportPathFor(maskPath: string): string {
  return maskPath.endsWith(".umask")
    ? `${maskPath.slice(0, -".umask".length)}.report.json`
    : `${maskPath}.report.json`;
}

export async function writeReport(path: string, report: TrainReport): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(report, null, 2)}\n`);
}
