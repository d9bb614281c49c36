/**
 * The NCCL gradient reducer on real GPUs (`pnpm test:gpu` on a host with at least 2 GPUs): two
 * workers (bench/device/nccl-worker.ts) started by launchWorkers, one per GPU, all-reduce a
 * ViT-B/16-sized gradient buffer in 25 MiB buckets with the shard weights of an unequal split, and
 * must end with bit-identical buffers equal to the expected weighted sums. Values are small
 * multiples of 1/64 so every sum is exact in fp32 whatever NCCL's reduction order. Prints the time
 * of one full reduction.
 * Skips (with the reason) without 2 GPUs, libcuda or libnccl.
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { ReduceRankResult } from "../../bench/device/nccl-worker.js";
import { bundleChild } from "../../test/bundle-child.js";
import { multiGpuUnavailable } from "../../test/multi-gpu-probe.js";
import { launchWorkers } from "./launcher.js";

const here = dirname(fileURLToPath(import.meta.url));
const GPUS = 2;

const unavailable = await multiGpuUnavailable(GPUS);
if (unavailable) console.warn(`NCCL reducer tests skipped: ${unavailable}`);

describe.skipIf(unavailable !== "")("NCCL gradient reducer on 2 GPUs", () => {
  it("leaves identical, exactly weighted gradients on both ranks", async () => {
    const entry = await bundleChild('import "../../bench/device/nccl-worker.ts";', here);
    const { results } = await launchWorkers<unknown, ReduceRankResult>({
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
