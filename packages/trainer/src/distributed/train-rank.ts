/**
 * train() as one rank of a data-parallel run (README "Several GPUs"): what the training loop
 * needs beyond joinDataParallel.
 *
 * - Every rank steps on its rows of each global batch; its step results (batch means over its
 *   rows) enter the epoch totals weighted by its share n_r / B, so the sum over ranks is what the
 *   single-GPU run reports (steps are counted once, images and correct answers summed).
 * - Stopping: each rank sees SIGINT on its own, perhaps a step apart, and a rank that stops while
 *   the others step on leaves them blocked inside NCCL. So rank 0 decides after every step (its
 *   own signal, or a stop request any rank posted to the store) and every rank follows.
 * - Rank 0 alone writes checkpoints, the mask and the report; every rank checks that its scores
 *   equal rank 0's (SHA-256 through the store) whenever a checkpoint is due.
 */
import { UnmaskError } from "@unmask/clip";
import type { EpochTotals } from "../checkpoint.js";
import type { TrainBatch } from "../engine.js";
import { type DataParallel, joinDataParallel } from "./data-parallel.js";
import type { Nccl } from "./nccl.js";
import type { Rendezvous } from "./rendezvous.js";
import { reduceWeight } from "./sharding.js";

/** What train() gets as `distributed` inside a worker (train-worker.ts builds it from runWorker's context). */
export interface TrainRankContext {
  rendezvous: Rendezvous;
  /** The loaded NCCL library (required when the world has more than one rank). */
  nccl?: Nccl;
}

export interface TrainRank {
  dp: DataParallel;
  /** Rank 0: writes checkpoints and outputs, evaluates, reports progress. */
  isWriter: boolean;
  /** This rank's rows of a global batch, and their weight n_r / B in the global figures. */
  shard(batch: TrainBatch): { batch: TrainBatch; weight: number };
  /** Collective, once per step: whether every rank stops after step `step`. */
  agreeToStop(step: number, aborted: boolean): Promise<boolean>;
  /** Collective: the world's totals on rank 0 (this rank's own elsewhere). */
  combineTotals(key: string, totals: EpochTotals): Promise<EpochTotals>;
  /** Collective: leaves the NCCL communicator (after the last step). */
  dispose(): void;
}

const STOP_REQUESTS = "train/stop-requests";
const stopKey = (step: number) => `train/stop-after/${step}`;

export async function joinTrainRank(context: TrainRankContext, globalBatch: number): Promise<TrainRank> {
  const { rendezvous } = context;
  const dp = await joinDataParallel({ rendezvous, globalBatch, nccl: context.nccl });
  const { store, world } = rendezvous;
  const isWriter = world.rank === 0;
  let requested = false;
  return {
    dp,
    isWriter,
    shard(batch) {
      // The reducer pre-multiplies by n_r / globalBatch, fixed when the engine was built.
      if (batch.labels.length !== globalBatch)
        throw new UnmaskError(
          "BAD_BATCH",
          `a batch of ${batch.labels.length} images in a run whose steps take ${globalBatch}`,
          { subject: "batch" },
        );
      return { batch: dp.shard(batch), weight: reduceWeight(dp.range, globalBatch) };
    },
    async agreeToStop(step, aborted) {
      if (!store) return aborted;
      if (!isWriter) {
        if (aborted && !requested) {
          requested = true;
          await store.add(STOP_REQUESTS, 1);
        }
        return (await store.getText(stopKey(step))) === "1";
      }
      const stop = aborted || (await store.add(STOP_REQUESTS, 0)) > 0;
      // Kept, not deleted: a rank may still be on its way to reading it (one small key per step).
      await store.set(stopKey(step), stop ? "1" : "0");
      return stop;
    },
    async combineTotals(key, totals) {
      const all = await dp.gather(key, totals);
      if (!all) return totals;
      const sum = (pick: (t: EpochTotals) => number) => all.reduce((a, t) => a + pick(t), 0);
      return {
        steps: totals.steps,
        images: sum((t) => t.images),
        lossCe: sum((t) => t.lossCe),
        lossKl: sum((t) => t.lossKl),
        lossReg: sum((t) => t.lossReg),
        correct: sum((t) => t.correct),
      };
    },
    dispose: () => dp.dispose(),
  };
}
