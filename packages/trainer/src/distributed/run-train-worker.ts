/**
 * One worker of a several-GPU train() (train-launch.ts starts one per GPU; train-worker.ts is the
 * process entry): reads the run's options from the JSON file the launcher wrote, opens NCCL,
 * joins the world (rank 0 makes the NCCL unique id) and runs train() as its rank. Rank 0 sends
 * its result back; the others send null.
 */
import { readFile } from "node:fs/promises";
import { type TrainOptions, train } from "../train.js";
import { Nccl } from "./nccl.js";
import { resultToWire, type WireTrainResult } from "./train-launch.js";
import { runWorker, type WorkerContext } from "./worker.js";

export interface RunTrainWorkerOptions {
  /** The options file the launcher wrote (JSON of TrainOptions). */
  optionsPath: string;
  /** Default Nccl.open(); tests pass a stand-in. */
  openNccl?: () => Promise<Nccl>;
  /** Options that cannot travel as JSON (tests: an engine factory), given the rank's context. */
  overrides?: (context: WorkerContext) => Partial<TrainOptions>;
}

/** Runs one rank; sets process.exitCode and never throws (worker.ts runWorker). */
export async function runTrainWorker(options: RunTrainWorkerOptions): Promise<void> {
  const trainOptions = JSON.parse(await readFile(options.optionsPath, "utf8")) as TrainOptions;
  // A missing NCCL is reported by the rank that needs it, as a typed error through runWorker.
  let nccl: Nccl | undefined;
  let ncclError: unknown;
  try {
    nccl = await (options.openNccl ?? (() => Nccl.open()))();
  } catch (error) {
    ncclError = error;
  }
  const loadedNccl = (): Nccl => {
    if (!nccl) throw ncclError;
    return nccl;
  };
  await runWorker<WireTrainResult | null>(
    async (context) => {
      const result = await train({
        ...trainOptions,
        ...options.overrides?.(context),
        signal: context.signal,
        onProgress: context.progress,
        distributed: { rendezvous: context.rendezvous, nccl: loadedNccl() },
      });
      return context.world.rank === 0 ? resultToWire(result) : null;
    },
    { createUniqueId: () => loadedNccl().getUniqueId() },
  );
}
