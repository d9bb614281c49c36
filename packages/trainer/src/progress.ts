/**
 * What `train()` reports while it works: a discriminated union on `status`, delivered through the
 * `onProgress` option (libraries never print; the CLI draws these as a progress bar).
 */
import type { TrainReport } from "./report.js";

export type PrepareStage = "model" | "data" | "text" | "cache" | "engine";

export type TrainProgress =
  | { status: "prepare"; stage: PrepareStage; done: number; total: number; message: string }
  | { status: "resume"; checkpoint: string; epoch: number; globalStep: number }
  | { status: "epoch-start"; epoch: number; epochs: number; lr: number; steps: number }
  | {
      status: "step";
      /** 0-based epoch and step inside it. */
      epoch: number;
      epochs: number;
      step: number;
      steps: number;
      globalStep: number;
      totalSteps: number;
      /** Cross-entropy of this batch. */
      loss: number;
      lossKl: number;
      /** Student top-1 accuracy on this (augmented) batch, in [0, 1]. */
      accuracy: number;
      imagesPerSecond: number;
      /** Estimated seconds of training left (not counting the final evaluation). */
      etaSeconds: number;
    }
  | { status: "epoch-end"; epoch: number; epochs: number; loss: number; accuracy: number; seconds: number }
  | { status: "checkpoint"; path: string; epoch: number; globalStep: number }
  | { status: "evaluate"; done: number; total: number }
  | { status: "done"; report: TrainReport; maskPath: string | null; reportPath: string | null };

export type OnTrainProgress = (event: TrainProgress) => void;
