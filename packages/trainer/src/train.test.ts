import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeMask, isUnmaskError } from "@unmask/mask-format";
import { beforeAll, describe, expect, it } from "vitest";
import { writeColourImageFolder } from "../test/colour-folder.js";
import { fakeEngineFactory, fakeTextEncoder } from "../test/fake-engine.js";
import { makeTinyModelDir } from "../test/tiny-model.js";
import type { EngineOptions } from "./engine.js";
import type { TrainProgress } from "./progress.js";
import { type TrainOptions, train } from "./train.js";

let work: string;
let modelDir: string;
let dataDir: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "unmask-train-"));
  modelDir = await makeTinyModelDir(join(work, "model"));
  dataDir = await writeColourImageFolder(join(work, "data"));
});

function options(extra: Partial<TrainOptions> = {}): TrainOptions {
  return {
    model: modelDir,
    data: dataDir,
    shots: 4,
    seed: 3,
    epochs: 3,
    batchSize: 5,
    engineFactory: fakeEngineFactory(),
    encodeText: fakeTextEncoder(64),
    ...extra,
  };
}

describe("train (loop and run management, stand-in engine)", () => {
  it("runs epochs x steps with the cosine schedule and writes the mask and report", async () => {
    const out = join(work, "a", "mask.umask");
    const events: TrainProgress[] = [];
    const log = { steps: [] as number[] };
    const result = await train(
      options({ out, engineFactory: fakeEngineFactory(log), onProgress: (e) => events.push(e) }),
    );
    // 12 images, batch 5: drop_last -> 2 steps per epoch
    expect(log.steps).toEqual([0, 1, 2, 3, 4, 5]);
    const starts = events.filter((e) => e.status === "epoch-start");
    expect(starts.map((e) => (e as { lr: number }).lr)).toEqual([
      8e-5,
      (8e-5 * (1 + Math.cos(Math.PI / 3))) / 2,
      (8e-5 * (1 + Math.cos((2 * Math.PI) / 3))) / 2,
    ]);
    expect(events.filter((e) => e.status === "checkpoint").length).toBe(3);
    expect(events.at(-1)?.status).toBe("done");
    expect(existsSync(`${out}.ckpt`)).toBe(false);

    const report = JSON.parse(readFileSync(join(work, "a", "mask.report.json"), "utf8"));
    expect(report.train.length).toBe(12);
    expect(report.data.classes).toEqual(["blue_things", "green_things", "red_things"]);
    expect(report.history.length).toBe(3);
    expect(report.accuracy.testImages).toBe(6);
    expect(report.recipe.maskedTensors[0]).toBe("visual.conv1.weight");
    expect(report.maskEntries).toBe(result.masks.reduce((a, m) => a + m.shape.reduce((x, y) => x * y), 0));

    const mask = decodeMask(new Uint8Array(readFileSync(out)));
    expect(mask.head?.classNames).toEqual(["blue things", "green things", "red things"]);
    expect(mask.head?.template).toBe("a photo of a {}.");
    expect(mask.baseModel.fingerprint).toBe(report.model.fingerprint);
    expect(mask.recipe).toMatchObject({ seed: 3, shots: 4, fileListSha256: report.fileListSha256 });
    expect(mask.metrics).toMatchObject({ testImages: 6, trainImages: 12 });
  });

  it("stops on abort with a checkpoint, and --resume ends byte-identical to an uninterrupted run", async () => {
    const whole = await train(options({ out: join(work, "b", "whole.umask") }));
    const out = join(work, "b", "cut.umask");
    for (const stopAt of [1, 2, 3, 4]) {
      const controller = new AbortController();
      const error = await train(
        options({
          out,
          resume: stopAt !== 1,
          signal: controller.signal,
          onProgress: (e) => {
            if (e.status === "step" && e.globalStep >= stopAt) controller.abort();
          },
        }),
      ).catch((e) => e);
      expect(isUnmaskError(error, "INTERRUPTED")).toBe(true);
      expect(existsSync(`${out}.ckpt`)).toBe(true);
    }
    const events: TrainProgress[] = [];
    const log = { steps: [] as number[] };
    const resumed = await train(
      options({
        out,
        resume: true,
        engineFactory: fakeEngineFactory(log),
        onProgress: (e) => events.push(e),
      }),
    );
    expect(events.find((e) => e.status === "resume")).toMatchObject({ globalStep: 4 });
    expect(log.steps).toEqual([4, 5]);
    expect(Buffer.from(resumed.maskBytes).equals(Buffer.from(whole.maskBytes))).toBe(true);
    expect(readFileSync(out).equals(readFileSync(join(work, "b", "whole.umask")))).toBe(true);
    expect(resumed.report.history).toEqual(whole.report.history);
  });

  it("resumes an interrupted evaluation without training again", async () => {
    const whole = await train(options({ evalBatchSize: 2 }));
    const out = join(work, "e", "m.umask");
    const controller = new AbortController();
    const error = await train(
      options({
        out,
        evalBatchSize: 2,
        signal: controller.signal,
        onProgress: (e) => e.status === "evaluate" && controller.abort(),
      }),
    ).catch((e) => e);
    expect(error).toMatchObject({ code: "INTERRUPTED", message: expect.stringMatching(/evaluation/) });
    const log = { steps: [] as number[] };
    const resumed = await train(
      options({ out, resume: true, evalBatchSize: 2, engineFactory: fakeEngineFactory(log) }),
    );
    expect(log.steps).toEqual([]);
    expect(Buffer.from(resumed.maskBytes).equals(Buffer.from(whole.maskBytes))).toBe(true);
  });

  it("refuses to resume a checkpoint written with other settings", async () => {
    const out = join(work, "c", "m.umask");
    const controller = new AbortController();
    await train(
      options({
        out,
        signal: controller.signal,
        onProgress: (e) => e.status === "step" && controller.abort(),
      }),
    ).catch(() => {});
    await expect(train(options({ out, resume: true, seed: 4 }))).rejects.toMatchObject({
      code: "CHECKPOINT_MISMATCH",
    });
    await expect(train(options({ out, resume: true, lr: 1e-4 }))).rejects.toMatchObject({
      code: "CHECKPOINT_MISMATCH",
    });
  });

  it("can skip the zero-shot evaluation", async () => {
    const r = await train(options({ epochs: 1, evaluateZeroShot: false, evalLimit: 3 }));
    expect(r.report.accuracy).toMatchObject({ zeroShot: null, testImages: 3 });
    expect(r.report.accuracy.masked).not.toBeNull();
  });

  it("writes an epoch's checkpoint during the next epoch even when steps block the thread", async () => {
    const events: TrainProgress[] = [];
    const blocker = new Int32Array(new SharedArrayBuffer(4));
    const base = fakeEngineFactory();
    const out = join(work, "blocking", "mask.umask");
    await train(
      options({
        out,
        epochs: 3,
        batchSize: 1, // 12 steps an epoch
        testData: null,
        onProgress: (e) => events.push(e),
        // a step that waits synchronously, as one waiting on a GPU does
        engineFactory: async (model, engineOptions) => {
          const engine = await base(model, engineOptions);
          const step = engine.step.bind(engine);
          engine.step = async (batch, stepOptions) => {
            Atomics.wait(blocker, 0, 0, 10);
            return step(batch, stepOptions);
          };
          return engine;
        },
      }),
    );
    const order = events
      .filter((e) => e.status === "checkpoint" || e.status === "epoch-end")
      .map((e) => `${e.status} ${(e as { epoch: number }).epoch}`);
    expect(order).toEqual(["epoch-end 0", "checkpoint 0", "epoch-end 1", "checkpoint 1", "epoch-end 2"]);
  });

  it("reports a training image that does not decode after starting the engine, and writes nothing", async () => {
    const data = join(work, "broken-data");
    cpSync(dataDir, data, { recursive: true });
    writeFileSync(join(data, "train", "red_things", "0.png"), "not a png");
    const out = join(work, "broken", "mask.umask");
    let disposed = 0;
    const base = fakeEngineFactory();
    const error = await train(
      options({
        data,
        shots: 6, // every training image, the broken one too
        out,
        engineFactory: async (model, engineOptions) => {
          const engine = await base(model, engineOptions);
          const dispose = engine.dispose.bind(engine);
          engine.dispose = async () => {
            disposed++;
            await dispose();
          };
          return engine;
        },
      }),
    ).catch((e) => e);
    expect(isUnmaskError(error, "IMAGE_DECODE_FAILED")).toBe(true);
    expect(error.message).toContain("0.png");
    expect(disposed).toBe(1);
    expect(existsSync(out)).toBe(false);
  });

  it("stops decoding when the engine cannot start, and reports the engine's error", async () => {
    const error = await train(
      options({
        engineFactory: async () => {
          throw new Error("no device here");
        },
      }),
    ).catch((e) => e);
    expect(error.message).toBe("no device here");
  });

  it("stops with NON_FINITE_LOSS at the first step whose loss is not finite, writing no mask", async () => {
    const out = join(work, "nan", "mask.umask");
    const base = fakeEngineFactory();
    const seen: EngineOptions[] = [];
    const error = await train(
      options({
        out,
        engineFactory: async (model, engineOptions) => {
          seen.push(engineOptions);
          // the cuda engine's name, so the message suggests the other precision
          const engine = { ...(await base(model, engineOptions)), name: "cuda" as const };
          const step = engine.step.bind(engine);
          let steps = 0;
          engine.step = async (batch, stepOptions) => {
            const r = await step(batch, stepOptions);
            return ++steps === 3 ? { ...r, lossCe: Number.POSITIVE_INFINITY } : r;
          };
          return engine;
        },
      }),
    ).catch((e) => e);
    expect(isUnmaskError(error, "NON_FINITE_LOSS")).toBe(true);
    expect(error.message).toContain("step 3 gave a loss of Infinity");
    expect(error.message).toContain("precision bf16");
    expect(seen[0].precision).toBe("fp16"); // the default
    expect(existsSync(out)).toBe(false);
  });

  it("hands its precision to the engine, names it in the report, and refuses an unknown one", async () => {
    const out = join(work, "bf16", "mask.umask");
    const seen: EngineOptions[] = [];
    const base = fakeEngineFactory();
    const result = await train(
      options({
        out,
        precision: "bf16",
        engineFactory: async (model, engineOptions) => {
          seen.push(engineOptions);
          return { ...(await base(model, engineOptions)), name: "cuda" as const };
        },
      }),
    );
    expect(seen[0].precision).toBe("bf16");
    expect(result.report.engine).toBe("cuda-bf16");
    const error = await train(options({ precision: "fp8" as never })).catch((e) => e);
    expect(isUnmaskError(error, "BAD_OPTION")).toBe(true);
    expect(error.subject).toBe("precision");
  });

  it("without a test set writes no checkpoint after the last epoch (nothing to resume there)", async () => {
    const events: TrainProgress[] = [];
    const out = join(work, "no-test", "mask.umask");
    await train(options({ out, epochs: 3, testData: null, onProgress: (e) => events.push(e) }));
    expect(
      events.filter((e) => e.status === "checkpoint").map((e) => (e as { epoch: number }).epoch),
    ).toEqual([0, 1]);
    expect(existsSync(out)).toBe(true);
    expect(existsSync(`${out}.ckpt`)).toBe(false);
  });

  it("reproduces a run from its report's file list", async () => {
    const first = await train(options({ epochs: 1, testData: null }));
    const again = await train(
      options({
        epochs: 1,
        testData: null,
        trainList: { shots: 4, train: first.report.train },
        shots: undefined,
      }),
    );
    expect(again.report.fileListSha256).toBe(first.report.fileListSha256);
    expect(Buffer.from(again.maskBytes).equals(Buffer.from(first.maskBytes))).toBe(true);
    expect(again.report.accuracy.zeroShot).toBeNull();
  });
});
