/**
 * train() on several GPUs, checked without a GPU: the `gpus` option's checks, then a world of 2
 * ranks with the data-parallel stand-in engine (test/data-parallel-fake.ts: it joins through
 * EngineOptions.distributed and all-reduces through the store), first as two train() calls in
 * this process, then as two worker processes started by launchTraining. Each must end with the
 * mask of the single-process run on the same global batches, with rank 0 alone writing files.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleChild } from "../../test/bundle-child.js";
import { writeColourImageFolder } from "../../test/colour-folder.js";
import { dataParallelFakeFactory, fakeNccl } from "../../test/data-parallel-fake.js";
import { fakeEngineFactory, fakeTextEncoder } from "../../test/fake-engine.js";
import { makeTinyModelDir } from "../../test/tiny-model.js";
import type { TrainProgress } from "../progress.js";
import { type TrainOptions, type TrainResult, train } from "../train.js";
import { NCCL_UNIQUE_ID_BYTES, rendezvous } from "./rendezvous.js";
import { startTcpStore } from "./tcp-store.js";
import { launchTraining } from "./train-launch.js";

const here = dirname(fileURLToPath(import.meta.url));
let work: string;
let modelDir: string;
let dataDir: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "unmask-train-gpus-"));
  modelDir = await makeTinyModelDir(join(work, "model"));
  dataDir = await writeColourImageFolder(join(work, "data"));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** 12 images, batch 5: 2 steps per epoch, split 2 + 3 between two ranks. */
function options(extra: Partial<TrainOptions> = {}): TrainOptions {
  return {
    model: modelDir,
    data: dataDir,
    shots: 4,
    seed: 3,
    epochs: 3,
    batchSize: 5,
    encodeText: fakeTextEncoder(64),
    ...extra,
  };
}

const bitsOf = (result: TrainResult) => result.masks.map((m) => Buffer.from(m.bits).toString("hex"));

function expectSameTraining(result: TrainResult, single: TrainResult): void {
  expect(bitsOf(result)).toEqual(bitsOf(single));
  expect(result.report.history.map((h) => [h.epoch, h.lr, h.images, h.accuracy])).toEqual(
    single.report.history.map((h) => [h.epoch, h.lr, h.images, h.accuracy]),
  );
  // losses are shard-weighted sums over the ranks: equal up to float rounding
  result.report.history.forEach((h, e) => {
    expect(h.loss).toBeCloseTo(single.report.history[e].loss, 12);
    expect(h.lossKl).toBeCloseTo(single.report.history[e].lossKl, 12);
  });
  expect(result.report.accuracy).toEqual(single.report.accuracy);
}

/** Two ranks in this process, each with its own store connection, as two workers would be. */
async function worldOf2() {
  const server = await startTcpStore();
  const ranks = await Promise.all(
    [0, 1].map((rank) =>
      rendezvous({
        env: {
          RANK: String(rank),
          WORLD_SIZE: "2",
          MASTER_PORT: String(server.port),
          UNMASK_STORE_HOSTED: "1",
        },
        createUniqueId: () => new Uint8Array(NCCL_UNIQUE_ID_BYTES).fill(5),
      }),
    ),
  );
  return {
    ranks,
    async close() {
      await Promise.all(ranks.map((r) => r.close({ wait: false })));
      await server.close();
    },
  };
}

let single: TrainResult;
beforeAll(async () => {
  single = await train(options({ engineFactory: fakeEngineFactory() }));
});

describe("the gpus option", () => {
  it("refuses a count that is not a positive integer", async () => {
    for (const gpus of [0, -1, 1.5, Number.NaN, 1e6])
      await expect(train(options({ gpus, engine: "cuda" }))).rejects.toMatchObject({
        code: "BAD_OPTION",
        subject: "gpus",
      });
  });

  it("needs the cuda engine, and options that travel to the workers as JSON", async () => {
    await expect(train(options({ gpus: 2, encodeText: undefined }))).rejects.toMatchObject({
      code: "BAD_OPTION",
      subject: "gpus",
      message: expect.stringContaining("needs the cuda engine"),
    });
    await expect(train(options({ gpus: 2, engine: "cuda" }))).rejects.toMatchObject({
      code: "BAD_OPTION",
      subject: "encodeText",
    });
    await expect(
      train(options({ gpus: 2, engine: "cuda", encodeText: undefined, engineFactory: fakeEngineFactory() })),
    ).rejects.toMatchObject({ code: "BAD_OPTION", subject: "engineFactory" });
    const inMemory = {
      classNames: ["a"],
      items: [
        { id: "memory:0", label: 0, source: { width: 1, height: 1, channels: 3, data: new Uint8Array(3) } },
      ],
      root: null,
      description: "in memory",
    };
    await expect(
      train(options({ gpus: 2, engine: "cuda", encodeText: undefined, data: inMemory })),
    ).rejects.toMatchObject({ code: "BAD_OPTION", subject: "data" });
  });

  it("gpus 1 is the single-process run", async () => {
    const result = await train(options({ gpus: 1, engineFactory: fakeEngineFactory() }));
    expect(bitsOf(result)).toEqual(bitsOf(single));
  });
});

describe("a world of 2 ranks in one process", () => {
  it("trains to the single-process mask; rank 0 alone evaluates and writes", async () => {
    const world = await worldOf2();
    try {
      const outs = [join(work, "w0", "mask.umask"), join(work, "w1", "mask.umask")];
      const events: TrainProgress[][] = [[], []];
      const logs = [
        { steps: [] as number[], rows: [] as number[] },
        { steps: [] as number[], rows: [] as number[] },
      ];
      const results = await Promise.all(
        world.ranks.map((r, rank) =>
          train(
            options({
              out: outs[rank],
              distributed: { rendezvous: r, nccl: fakeNccl() },
              engineFactory: dataParallelFakeFactory(r, logs[rank]),
              onProgress: (e) => events[rank].push(e),
            }),
          ),
        ),
      );
      expectSameTraining(results[0], single);
      expect(bitsOf(results[1])).toEqual(bitsOf(single));
      expect(logs[0].steps).toEqual([0, 1, 2, 3, 4, 5]);
      expect(existsSync(outs[0])).toBe(true);
      expect(existsSync(outs[1])).toBe(false);
      expect(existsSync(dirname(outs[1])) && readdirSync(dirname(outs[1])).length > 0).toBe(false);
      expect(results[1].maskPath).toBeNull();
      expect(results[1].report.accuracy.testImages).toBe(0); // only rank 0 evaluates
      expect(events[0].filter((e) => e.status === "checkpoint").length).toBe(3);
      expect(events[1].filter((e) => e.status === "checkpoint").length).toBe(0);
      // each rank stepped on its rows: 2 + 3 of every batch of 5
      expect(logs.map((l) => l.rows)).toEqual([
        [2, 2, 2, 2, 2, 2],
        [3, 3, 3, 3, 3, 3],
      ]);
      expect(events.map((ev) => ev.filter((e) => e.status === "step").length)).toEqual([6, 6]);
    } finally {
      await world.close();
    }
  });

  it("refuses an engine that ignores EngineOptions.distributed, and catches replicas that drift apart", async () => {
    for (const [engine, code] of [
      ["ignores", "ENGINE_NOT_DISTRIBUTED"],
      ["drifts", "REPLICA_DIVERGED"],
    ] as const) {
      const world = await worldOf2();
      try {
        const errors = await Promise.all(
          world.ranks.map((r) =>
            train(
              options({
                distributed: { rendezvous: r, nccl: fakeNccl() },
                engineFactory:
                  engine === "ignores"
                    ? fakeEngineFactory()
                    : dataParallelFakeFactory(r, { steps: [] }, { allReduce: false }),
              }),
            ).catch((e) => e),
          ),
        );
        for (const error of errors) expect(error).toMatchObject({ code });
      } finally {
        await world.close();
      }
    }
  });

  it("stops every rank after the same step when one rank is interrupted, and resumes to the same mask", async () => {
    const world = await worldOf2();
    const out = join(work, "cut", "mask.umask");
    try {
      const controller = new AbortController();
      const errors = await Promise.all(
        world.ranks.map((r, rank) =>
          train(
            options({
              out,
              distributed: { rendezvous: r, nccl: fakeNccl() },
              engineFactory: dataParallelFakeFactory(r),
              signal: rank === 1 ? controller.signal : undefined,
              onProgress: (e) => {
                if (rank === 1 && e.status === "step" && e.globalStep === 3) controller.abort();
              },
            }),
          ).catch((e) => e),
        ),
      );
      for (const error of errors) expect(error).toMatchObject({ code: "INTERRUPTED" });
      // both name the same step: rank 0 decided, rank 1 followed
      expect(errors[0].message).toBe(errors[1].message);
      expect(errors[0].message).toMatch(/stopped after step [34] of 6/);
      expect(existsSync(`${out}.ckpt`)).toBe(true);
    } finally {
      await world.close();
    }
    const resumed = await train(options({ out, resume: true, engineFactory: fakeEngineFactory() }));
    expectSameTraining(resumed, single);
  });
});

describe("launchTraining: two worker processes", () => {
  const WORKER = `
import { runTrainWorker } from "./run-train-worker.ts";
import { dataParallelFakeFactory, fakeNccl } from "../../test/data-parallel-fake.ts";
import { fakeTextEncoder } from "../../test/fake-engine.ts";

await runTrainWorker({
  optionsPath: process.argv[2],
  openNccl: async () => fakeNccl(),
  overrides: ({ rendezvous }) => ({
    engineFactory: dataParallelFakeFactory(rendezvous),
    encodeText: fakeTextEncoder(64),
  }),
});
`;
  let entry = "";
  beforeAll(async () => {
    entry = await bundleChild(WORKER, here);
  });

  it("runs train() on each, forwards rank 0's progress and returns its result", async () => {
    const out = join(work, "launched", "mask.umask");
    const events: TrainProgress[] = [];
    const result = await launchTraining(
      options({ gpus: 2, engine: "cuda", encodeText: undefined, out, onProgress: (e) => events.push(e) }),
      { entry, execArgv: [], graceMs: 2000 },
    );
    expectSameTraining(result, single);
    expect(result.maskPath).toBe(out);
    expect(existsSync(out) && existsSync(result.reportPath as string)).toBe(true);
    expect(existsSync(`${out}.ckpt`)).toBe(false);
    expect(events.filter((e) => e.status === "epoch-end").length).toBe(3);
    expect(events.at(-1)).toMatchObject({ status: "done", maskPath: out });
  });

  it("surfaces a worker's typed error naming its rank", async () => {
    const error = await launchTraining(
      options({ gpus: 2, engine: "cuda", encodeText: undefined, data: join(work, "missing") }),
      { entry, execArgv: [], graceMs: 2000 },
    ).catch((e) => e);
    expect(error).toMatchObject({
      code: "WORKER_FAILED",
      message: expect.stringContaining("DATA_NOT_FOUND"),
    });
  });
});
