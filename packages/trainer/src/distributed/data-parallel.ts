/**
 * Data parallelism for one rank, in the terms train() uses: which rows of each global batch this
 * rank steps on, what the engine gets (EngineOptions.distributed, building the NCCL gradient
 * reducer), and the few host-side exchanges through the store (epoch totals for rank 0's report,
 * a check that every replica holds the same scores).
 *
 *   const dp = await joinDataParallel({ rendezvous: ctx.rendezvous, globalBatch: steps' batch, nccl })
 *   engine = await create(model, { ...options, distributed: dp.engineOptions })
 *   each step: engine.step(dp.shard(globalBatch), ...)
 *   each checkpoint: await dp.checkReplicas(`epoch-${e}`, state.scores)  (rank 0 writes the files)
 *
 * A world of 1 needs none of it: shard() is the identity and engineOptions is undefined, so the
 * single-GPU path is the unchanged engine.
 */
import { createHash } from "node:crypto";
import { UnmaskError } from "@unmask/clip";
import type { TrainBatch } from "../engine.js";
import { type DistributedEngineOptions, NcclGradientReducer } from "./gradient-reducer.js";
import type { Nccl, NcclCommunicator } from "./nccl.js";
import type { Rendezvous, WorldInfo } from "./rendezvous.js";
import { reduceWeight, type ShardRange, shardBatch, shardRange } from "./sharding.js";

export interface DataParallelOptions {
  rendezvous: Rendezvous;
  /** Images per step of the whole world (the sampler's batch; constant over a run). */
  globalBatch: number;
  /** The loaded NCCL library; required when the world has more than one rank. */
  nccl?: Nccl;
  bucketBytes?: number;
}

export interface DataParallel {
  world: WorldInfo;
  range: ShardRange;
  /** This rank's rows of a global batch (the batch itself in a world of 1). */
  shard(batch: TrainBatch): TrainBatch;
  /** For EngineOptions.distributed; undefined in a world of 1. */
  engineOptions: DistributedEngineOptions | undefined;
  /** Every rank's `value` on rank 0 (by rank); null elsewhere. Collective: all ranks call it. */
  gather<T>(key: string, value: T): Promise<T[] | null>;
  /**
   * Checks that every rank holds bit-identical tensors (SHA-256 compared through the store).
   * Collective. @throws UnmaskError REPLICA_DIVERGED on every rank, naming the first rank that differs from rank 0
   */
  checkReplicas(key: string, tensors: ReadonlyMap<string, Float32Array>): Promise<void>;
  /**
   * Call after creating the engine: an engine that ignored EngineOptions.distributed would train
   * each rank on its shard alone. @throws UnmaskError ENGINE_NOT_DISTRIBUTED
   */
  assertEngineJoined(engineName: string): void;
  /** Destroys the communicator (collective). */
  dispose(): void;
}

/** SHA-256 of tensors in name order (names included, so a missing tensor changes the digest). */
export function tensorsDigest(tensors: ReadonlyMap<string, Float32Array>): string {
  const hash = createHash("sha256");
  for (const name of [...tensors.keys()].sort()) {
    const t = tensors.get(name) as Float32Array;
    hash.update(name).update(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
  }
  return hash.digest("hex");
}

export async function joinDataParallel(options: DataParallelOptions): Promise<DataParallel> {
  const { rendezvous, globalBatch } = options;
  const { world, store } = rendezvous;
  const range = shardRange(globalBatch, world.worldSize, world.rank);
  if (world.worldSize > 1 && !options.nccl)
    throw new UnmaskError("NCCL_UNAVAILABLE", `${world.worldSize} ranks need NCCL`, { subject: "nccl" });
  let comm: NcclCommunicator | undefined;
  let reducerCreated = false;
  const engineOptions: DistributedEngineOptions | undefined =
    world.worldSize === 1
      ? undefined
      : {
          rank: world.rank,
          worldSize: world.worldSize,
          createReducer(context) {
            // The engine calls this with its CUDA context current: the communicator binds to that device.
            reducerCreated = true;
            comm ??= options.nccl!.initRank(rendezvous.uniqueId as Uint8Array, world.worldSize, world.rank);
            return new NcclGradientReducer({
              comm,
              context,
              weight: reduceWeight(range, globalBatch),
              bucketBytes: options.bucketBytes,
            });
          },
        };

  const gather = async <T>(key: string, value: T): Promise<T[] | null> => {
    if (!store) return [value];
    await store.set(`gather/${key}/${world.rank}`, JSON.stringify(value));
    if (world.rank !== 0) return null;
    const all: T[] = [];
    for (let r = 0; r < world.worldSize; r++)
      all.push(JSON.parse(await store.getText(`gather/${key}/${r}`)) as T);
    return all;
  };

  return {
    world,
    range,
    shard: (batch) => (world.worldSize === 1 ? batch : shardBatch(batch, range)),
    engineOptions,
    gather,
    async checkReplicas(key, tensors) {
      if (!store) return;
      const mine = tensorsDigest(tensors);
      await store.set(`replicas/${key}/${world.rank}`, mine);
      await store.barrier(`replicas/${key}`, world.worldSize);
      // every rank reads every digest, so all of them stop together when one differs
      const reference = await store.getText(`replicas/${key}/0`);
      for (let r = 1; r < world.worldSize; r++) {
        const theirs = await store.getText(`replicas/${key}/${r}`);
        if (theirs !== reference)
          throw new UnmaskError(
            "REPLICA_DIVERGED",
            `rank ${r}'s scores differ from rank 0's at ${key} (SHA-256 ${theirs.slice(0, 12)} vs ${reference.slice(0, 12)}); the all-reduce did not leave identical gradients`,
            { subject: `rank ${r}` },
          );
      }
    },
    assertEngineJoined(engineName) {
      if (engineOptions && !reducerCreated)
        throw new UnmaskError(
          "ENGINE_NOT_DISTRIBUTED",
          `the ${engineName} engine did not build a gradient reducer from EngineOptions.distributed, so ${world.worldSize} GPUs would train apart; it does not support several GPUs yet`,
          { subject: "gpus" },
        );
    },
    dispose() {
      comm?.destroy();
      comm = undefined;
    },
  };
}
