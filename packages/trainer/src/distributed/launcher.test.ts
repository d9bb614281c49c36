/**
 * launchWorkers with a fake CPU worker (no GPU, no NCCL): workers join through the launcher's
 * store, exchange values, report progress and results; failures, crashes, hangs and interrupts
 * stop every worker and surface as typed errors.
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { bundleChild } from "../../test/bundle-child.js";
import { type LaunchOptions, launchWorkers, type WorkerOutputLine } from "./launcher.js";

const here = dirname(fileURLToPath(import.meta.url));

/** The fake worker: behaviour chosen per rank through FAKE_* variables. */
const FAKE_WORKER = `
import { UnmaskError } from "@unmask/clip";
import { runWorker } from "./worker.ts";

await runWorker(
  async ({ world, rendezvous, signal, progress }) => {
    const mine = (name) => (process.env[name] ?? "").split(",").includes(String(world.rank));
    const store = rendezvous.store;
    await store.set("value/" + world.rank, String(10 * (world.rank + 1)));
    await store.barrier("values", world.worldSize);
    let sum = 0;
    for (let r = 0; r < world.worldSize; r++) sum += Number(await store.getText("value/" + r));
    progress({ status: "sum", rank: world.rank, sum });
    console.log("rank " + world.rank + " says hello");
    if (mine("FAKE_FAIL")) throw new UnmaskError("FAKE_FAILURE", "rank " + world.rank + " failed on purpose", { subject: "fake" });
    if (mine("FAKE_CRASH")) { console.error("about to crash"); process.exit(3); }
    if (mine("FAKE_HANG")) await new Promise((resolve) => signal.addEventListener("abort", resolve));
    if (mine("FAKE_HANG") && signal.aborted) throw new UnmaskError("INTERRUPTED", "rank " + world.rank + " stopped after its step", { subject: "checkpoint" });
    if (mine("FAKE_STUCK")) { process.removeAllListeners("SIGTERM"); process.on("SIGTERM", () => {}); setInterval(() => {}, 1000); await new Promise(() => {}); }
    return {
      sum,
      uniqueIdByte: rendezvous.uniqueId[0],
      env: {
        RANK: process.env.RANK, WORLD_SIZE: process.env.WORLD_SIZE, LOCAL_RANK: process.env.LOCAL_RANK,
        CUDA_VISIBLE_DEVICES: process.env.CUDA_VISIBLE_DEVICES, NCCL_NVLS_ENABLE: process.env.NCCL_NVLS_ENABLE,
        MASTER_ADDR: process.env.MASTER_ADDR,
      },
    };
  },
  { createUniqueId: () => new Uint8Array(128).fill(42), timeoutMs: 20000 },
);
`;

let entry = "";
beforeAll(async () => {
  entry = await bundleChild(FAKE_WORKER, here);
});

const launch = (env: Record<string, string>, extra: Partial<Parameters<typeof launchWorkers>[0]> = {}) =>
  launchWorkers({ gpus: 3, entry, env, execArgv: [], graceMs: 2000, ...extra });

describe("launchWorkers", () => {
  it("starts one worker per GPU with torchrun's variables, its own device and NVLS off", async () => {
    const progress: unknown[] = [];
    const lines: WorkerOutputLine[] = [];
    const { results, world } = await launch(
      {},
      { devices: ["4", "5", "7"], onProgress: (e) => progress.push(e), onOutput: (l) => lines.push(l) },
    );
    expect(world.worldSize).toBe(3);
    expect(world.masterPort).toBeGreaterThan(0);
    expect(results).toEqual(
      [0, 1, 2].map((rank) => ({
        sum: 60,
        uniqueIdByte: 42,
        env: {
          RANK: String(rank),
          WORLD_SIZE: "3",
          LOCAL_RANK: String(rank),
          CUDA_VISIBLE_DEVICES: ["4", "5", "7"][rank],
          NCCL_NVLS_ENABLE: "0",
          MASTER_ADDR: "127.0.0.1",
        },
      })),
    );
    expect(progress).toEqual([{ status: "sum", rank: 0, sum: 60 }]); // rank 0's only
    expect(
      lines
        .filter((l) => l.stream === "stdout")
        .map((l) => l.line)
        .sort(),
    ).toEqual(["rank 0 says hello", "rank 1 says hello", "rank 2 says hello"]);
  });

  it("one worker's typed error stops the others and names its rank (WORKER_FAILED)", async () => {
    const error = await launch({ FAKE_FAIL: "1", FAKE_HANG: "0,2" }).catch((e) => e);
    expect(error.code).toBe("WORKER_FAILED");
    expect(error.subject).toBe("rank 1");
    expect(error.message).toContain("FAKE_FAILURE: rank 1 failed on purpose");
  });

  it("a worker that dies without a word is reported with its exit code and last stderr lines", async () => {
    const error = await launch({ FAKE_CRASH: "2", FAKE_HANG: "0,1" }).catch((e) => e);
    expect(error.code).toBe("WORKER_FAILED");
    expect(error.message).toContain("worker rank 2 exited with code 3");
    expect(error.message).toContain("about to crash");
  });

  it("a worker that ignores SIGTERM after a peer failed is killed after the grace period", async () => {
    const error = await launch({ FAKE_FAIL: "0", FAKE_STUCK: "1,2" }, { graceMs: 300 }).catch((e) => e);
    expect([error.code, error.subject]).toEqual(["WORKER_FAILED", "rank 0"]);
  });

  it("aborting sends SIGINT: workers stop after their step and the launch rejects with INTERRUPTED", async () => {
    const controller = new AbortController();
    const started = launch(
      { FAKE_HANG: "0,1,2" },
      { signal: controller.signal, onProgress: () => setTimeout(() => controller.abort(), 50) },
    );
    const error = await started.catch((e) => e);
    expect(error.code).toBe("INTERRUPTED");
    expect(error.message).toMatch(/stopped after its step/);
  });

  it("validates its options", async () => {
    const cases: [Omit<LaunchOptions, "entry">, string][] = [
      [{ gpus: 0 }, "gpus"],
      [{ gpus: 2, devices: ["0"] }, "devices"],
      [{ gpus: 2, nodes: 2, nodeRank: 2 }, "nodeRank"],
      [{ gpus: 2, nodes: 2, nodeRank: 1, masterPort: 0 }, "MASTER_PORT"],
    ];
    for (const [options, subject] of cases) {
      const error = await launchWorkers({ entry, ...options }).catch((e) => e);
      expect([error.code, error.subject]).toEqual(["BAD_OPTION", subject]);
    }
    const missing = await launchWorkers({ gpus: 1, entry: `${entry}.absent` }).catch((e) => e);
    expect(missing.code).toBe("BAD_OPTION");
  });
});
