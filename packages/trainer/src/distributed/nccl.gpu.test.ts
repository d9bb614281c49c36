/**
 * The NCCL gradient reducer on real GPUs (`pnpm test:gpu` on a host with at least 2 GPUs): two
 * workers started by launchWorkers, one per GPU, all-reduce a ViT-B/16-sized gradient buffer in
 * 25 MiB buckets with the shard weights of an unequal split, and must end with bit-identical
 * buffers equal to the expected weighted sums. Values are small multiples of 1/64 so every sum is
 * exact in fp32 whatever NCCL's reduction order. Prints the time of one full reduction.
 * Skips (with the reason) without 2 GPUs, libcuda or libnccl.
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { bundleChild } from "../../test/bundle-child.js";
import { multiGpuUnavailable } from "../../test/multi-gpu-probe.js";
import { launchWorkers } from "./launcher.js";

const here = dirname(fileURLToPath(import.meta.url));
const GPUS = 2;

const unavailable = await multiGpuUnavailable(GPUS);
if (unavailable) console.warn(`NCCL reducer tests skipped: ${unavailable}`);

const WORKER = `
import { CudaDriver } from "../engines/cuda/driver.ts";
import { openCudaLibraries } from "../engines/cuda/libraries.ts";
import { backwardOrder, planBuckets } from "./buckets.ts";
import { NcclGradientReducer } from "./gradient-reducer.ts";
import { Nccl } from "./nccl.ts";
import { runWorker } from "./worker.ts";
import { createHash } from "node:crypto";

const nccl = await Nccl.open();
await runWorker(async ({ world, rendezvous }) => {
  const libs = await openCudaLibraries();
  const cu = CudaDriver.open(libs.koffi, libs.driver, 0);
  const stream = cu.createStream();
  const D = 768;
  const tensors = [{ name: "visual.conv1.weight", numel: D * 3 * 16 * 16 }];
  for (let l = 0; l < 12; l++)
    tensors.push(
      { name: "visual.transformer.resblocks." + l + ".attn.in_proj_weight", numel: 3 * D * D },
      { name: "visual.transformer.resblocks." + l + ".attn.out_proj.weight", numel: D * D },
    );
  const weights = [3 / 8, 5 / 8]; // shards of 96 and 160 rows of a global batch of 256
  const comm = nccl.initRank(rendezvous.uniqueId, world.worldSize, world.rank);
  // the flat layout of the plan (what the engine edit allocates)
  const plan = planBuckets({ tensors });
  const total = plan.totalElements;
  const base = cu.alloc(total * 4);
  const pointers = plan.slots.map((s) => base + 4 * s.offsetElements);
  const reducer = new NcclGradientReducer({
    comm, weight: weights[world.rank], context: { tensors, gradientPointers: pointers, cuda: libs },
  });
  const host = new Float32Array(total);
  const value = (i, r) => (r + 1) * (((i % 61) - 30) / 64);
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
  return { maxError, digest, ms, bytes: total * 4, buckets: reducer.plan.buckets.length, version: nccl.version };
}, { createUniqueId: () => nccl.getUniqueId() });
`;

describe.skipIf(unavailable !== "")("NCCL gradient reducer on 2 GPUs", () => {
  it("leaves identical, exactly weighted gradients on both ranks", async () => {
    const entry = await bundleChild(WORKER, here);
    const { results } = await launchWorkers<
      unknown,
      { maxError: number; digest: string; ms: number; bytes: number; buckets: number; version: number }
    >({
      gpus: GPUS,
      entry,
      execArgv: [],
      onOutput: (l) => console.log(`[rank ${l.rank}] ${l.line}`),
    });
    expect(results[0].digest).toBe(results[1].digest);
    expect(results[0].maxError).toBe(0);
    const r = results[0];
    console.log(
      `NCCL ${r.version}: ${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${r.buckets} buckets, ${r.ms.toFixed(3)} ms per reduction, ${(r.bytes / (r.ms / 1000) / 1e9).toFixed(1)} GB/s algorithm bandwidth`,
    );
  }, 120_000);
});
