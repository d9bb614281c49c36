/**
 * Test helper: the stand-in engine of fake-engine.ts as one rank of a data-parallel run, without
 * a GPU. It joins through EngineOptions.distributed like the cuda engine (createReducer, then
 * tensorReady for every masked tensor and wait() each step, on a stand-in NCCL and libcuda), and
 * does the all-reduce's job through the rendezvous store: every rank posts its rows of the batch,
 * reads everyone's, and steps on the whole batch in rank order. So every rank ends each step with
 * the scores of the single-process step on the same global batch, bit for bit.
 */

import type { Nccl } from "../src/distributed/nccl.js";
import type { Rendezvous } from "../src/distributed/rendezvous.js";
import type { EngineFactory, TrainBatch } from "../src/engine.js";
import { fakeEngineFactory } from "./fake-engine.js";

/** A stand-in NCCL: a fixed unique id, a communicator that reduces nothing. */
export function fakeNccl(): Nccl {
  const stub = {
    getUniqueId: () => new Uint8Array(128).fill(5),
    initRank: (_id: Uint8Array, worldSize: number, rank: number) => ({
      worldSize,
      rank,
      allReduce() {},
      group(run: () => void) {
        run();
      },
      destroy() {},
    }),
  };
  return stub as unknown as Nccl;
}

/** The stream and event calls the reducer declares on libcuda, all succeeding. */
const fakeCuda = { koffi: {}, driver: { func: () => () => 0 } } as never;

interface PostedRows {
  labels: number[];
  indices: number[];
  boxes: number[];
  flips: number[];
}

export interface DataParallelFakeLog {
  steps: number[];
  /** Rows of each step's batch this rank was given. */
  rows?: number[];
}

/** `allReduce: false` leaves out the exchange: each rank steps on its own rows (replicas drift). */
export function dataParallelFakeFactory(
  rendezvous: Pick<Rendezvous, "store">,
  log: DataParallelFakeLog = { steps: [] },
  { allReduce = true } = {},
): EngineFactory {
  const inner = fakeEngineFactory(log);
  return async (model, options) => {
    const engine = await inner(model, options);
    const distributed = options.distributed;
    const store = rendezvous.store;
    if (!distributed || !store) return engine;
    const tensors = model.maskedTensors.map((name) => ({
      name,
      numel: model.weights.get(name)?.data.length ?? 0,
    }));
    // back-to-back fake device addresses, as the engine lays gradients out
    let address = 1 << 20;
    const gradientPointers = tensors.map((t) => {
      const at = address;
      address += 2 * 4 * t.numel;
      return at;
    });
    const reducer = distributed.createReducer({ tensors, gradientPointers, cuda: fakeCuda });
    const classes = model.textFeatures.shape[0];
    return {
      ...engine,
      async step(batch, stepOptions) {
        const crops = batch.crops;
        if (!crops) throw new Error("the data-parallel fake needs crops");
        log.rows?.push(batch.labels.length);
        const mine: PostedRows = {
          labels: [...batch.labels],
          indices: [...crops.indices],
          boxes: [...crops.boxes],
          flips: [...crops.flips],
        };
        const key = (rank: number) => `fake-all-reduce/${stepOptions.step}/${rank}`;
        await store.set(key(distributed.rank), JSON.stringify(mine));
        const all: PostedRows[] = [];
        if (allReduce)
          for (let r = 0; r < distributed.worldSize; r++) all.push(JSON.parse(await store.getText(key(r))));
        else all.push(mine);
        const whole: TrainBatch = {
          labels: Int32Array.from(all.flatMap((p) => p.labels)),
          crops: {
            indices: Int32Array.from(all.flatMap((p) => p.indices)),
            boxes: Float32Array.from(all.flatMap((p) => p.boxes)),
            flips: Uint8Array.from(all.flatMap((p) => p.flips)),
          },
        };
        for (let t = tensors.length - 1; t >= 0; t--) reducer.tensorReady(t, 0);
        reducer.wait(0);
        const result = await engine.step(whole, stepOptions);
        // this rank's rows only, as a real rank counts them (fake-engine.ts's rule)
        let correct = 0;
        for (let i = 0; i < mine.labels.length; i++)
          if ((mine.indices[i] + stepOptions.step) % classes === mine.labels[i]) correct++;
        return { ...result, correct };
      },
    };
  };
}
