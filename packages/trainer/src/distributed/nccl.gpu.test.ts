/**
 * The NCCL gradient reducer on real GPUs (`pnpm test:gpu` on a host with at least 2 GPUs): two
 * workers (bench/device/nccl-worker.ts, which `main.mjs dpreduce` runs on the device: NOTES.md run
 * AM, max error 0, 1.0 ms) started by launchWorkers, one per GPU, all-reduce a
 * ViT-B/16-sized gradient buffer in 25 MiB buckets with the shard weights of an unequal split, and
 * must end with bit-identical buffers equal to the expected weighted sums. Values are small
 * multiples of 1/64 so every sum is exact in fp32 whatever NCCL's reduction order. Prints the time
 * of one full reduction.
 * Skips (with the reason) without 2 GPUs, libcuda or libnccl.
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ncclReduceCheck } from "../../bench/device/data-parallel.js";
import { bundleChild } from "../../test/bundle-child.js";
import { multiGpuUnavailable } from "../../test/multi-gpu-probe.js";

const here = dirname(fileURLToPath(import.meta.url));
const GPUS = 2;

const unavailable = await multiGpuUnavailable(GPUS);
if (unavailable) console.warn(`NCCL reducer tests skipped: ${unavailable}`);

describe.skipIf(unavailable !== "")("NCCL gradient reducer on 2 GPUs", () => {
  it("leaves identical, exactly weighted gradients on both ranks", async () => {
    const entry = await bundleChild('import "../../bench/device/nccl-worker.ts";', here);
    const r = await ncclReduceCheck(entry, GPUS);
    expect(r.replicasDiffering).toBe(0);
    expect(r.maxError).toBe(0);
    console.log(
      `NCCL ${r.version}: ${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${r.buckets} buckets, ${r.ms.toFixed(3)} ms per reduction, ${r.gbPerS} GB/s algorithm bandwidth`,
    );
  }, 120_000);
});
