/**
 * One rank of the NCCL gradient-reducer check (src/distributed/nccl.gpu.test.ts bundles it; on the
 * device `main.mjs dpreduce` runs it): a ViT-B/16-sized gradient buffer all-reduced in the
 * reducer's buckets with the shard weights of an unequal split (3/8, 5/8). Values are small
 * multiples of 1/64, so every weighted sum is exact in fp32 whatever NCCL's reduction order: the
 * result must equal the expected sums exactly and be bit-identical on both ranks. Also times one
 * full reduction.
 */
import { createHash } from "node:crypto";
import { backwardOrder, planBuckets } from "../../src/distributed/buckets.js";
import { NcclGradientReducer } from "../../src/distributed/gradient-reducer.js";
import { Nccl } from "../../src/distributed/nccl.js";
import { runWorker } from "../../src/distributed/worker.js";
import { CudaDriver } from "../../src/engines/cuda/driver.js";
import { openCudaLibraries } from "../../src/engines/cuda/libraries.js";

const nccl = await Nccl.open();
await runWorker(
  async ({ world, rendezvous }): Promise<ReduceRankResult> => {
    const libs = await openCudaLibraries();
    const cu = CudaDriver.open(libs.koffi, libs.driver, 0);
    const stream = cu.createStream();
    const D = 768;
    const tensors = [{ name: "visual.conv1.weight", numel: D * 3 * 16 * 16 }];
    for (let l = 0; l < 12; l++)
      tensors.push(
        { name: `visual.transformer.resblocks.${l}.attn.in_proj_weight`, numel: 3 * D * D },
        { name: `visual.transformer.resblocks.${l}.attn.out_proj.weight`, numel: D * D },
      );
    const weights = [3 / 8, 5 / 8]; // shards of 96 and 160 rows of a global batch of 256
    if (!rendezvous.uniqueId) throw new Error("the NCCL check needs a world of 2 or more");
    const comm = nccl.initRank(rendezvous.uniqueId, world.worldSize, world.rank);
    // the flat layout of the plan (what the engine edit allocates)
    const plan = planBuckets({ tensors });
    const total = plan.totalElements;
    const base = cu.alloc(total * 4);
    const pointers = plan.slots.map((s) => base + 4 * s.offsetElements);
    const reducer = new NcclGradientReducer({
      comm,
      weight: weights[world.rank],
      context: { tensors, gradientPointers: pointers, cuda: libs },
    });
    const host = new Float32Array(total);
    const value = (i: number, r: number) => (r + 1) * (((i % 61) - 30) / 64);
    for (let i = 0; i < total; i++) host[i] = value(i, world.rank);
    const order = backwardOrder(tensors.map((t) => t.name));
    const reduceAll = () => {
      for (const t of order) reducer.tensorReady(t, stream);
      reducer.wait(stream);
    };
    cu.upload(base, host);
    reduceAll();
    cu.synchronize(stream);
    cu.download(host, base);
    let maxError = 0;
    for (let i = 0; i < total; i++) {
      const want = weights[0] * value(i, 0) + weights[1] * value(i, 1);
      maxError = Math.max(maxError, Math.abs(host[i] - want));
    }
    const digest = createHash("sha256").update(new Uint8Array(host.buffer)).digest("hex");
    const e0 = cu.createEvent();
    const e1 = cu.createEvent();
    const repeats = 20;
    reduceAll();
    cu.record(e0, stream);
    for (let k = 0; k < repeats; k++) reduceAll();
    cu.record(e1, stream);
    cu.synchronize(stream);
    const ms = cu.elapsed(e0, e1) / repeats;
    reducer.dispose();
    comm.destroy();
    return {
      maxError,
      digest,
      ms,
      bytes: total * 4,
      buckets: reducer.plan.buckets.length,
      version: nccl.version,
    };
  },
  { createUniqueId: () => nccl.getUniqueId() },
);

export interface ReduceRankResult {
  maxError: number;
  digest: string;
  ms: number;
  bytes: number;
  buckets: number;
  version: number;
}
