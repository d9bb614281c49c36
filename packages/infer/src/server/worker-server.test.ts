import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { fixturePath } from "@unmask/fixtures";
import { isUnmaskError } from "@unmask/mask-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertTinyModel, makeMask, type TinyModel } from "../../test/helpers/tiny-model.js";
import { BaseModel } from "../base-model.js";
import { type Classifier, createClassifier } from "../classifier.js";
import {
  CRASH_FOR_TEST,
  createWorkerClassifiers,
  type WorkerClassifiers,
  type WorkerPoolEvent,
} from "../worker-classifier.js";
import { createInferenceServer, type InferenceServer } from "./inference-server.js";

// The worker threads run the built dist/classifier-worker.js (workers cannot load .ts).
const CLASSES = ["shirt", "shoe", "bag"];
let tiny: TinyModel;
let model: BaseModel;
let pool: WorkerClassifiers;
const events: WorkerPoolEvent[] = [];
let inProcess: InferenceServer;
let inWorkers: InferenceServer;
let baseIn: string;
let baseWorkers: string;
const photos = ["n01440764_tench.JPEG", "n02123045_tabby.JPEG", "n04285008_sports_car.JPEG"].map((f) =>
  readFileSync(fixturePath(`text-image/${f}`)),
);
// A readable header (sharp metadata succeeds) over a body that does not decode.
const undecodable = Buffer.concat([photos[0].subarray(0, 200), Buffer.alloc(500, 7)]);

beforeAll(async () => {
  tiny = await convertTinyModel();
  const maskPath = join(tiny.root, "fashion.umask");
  writeFileSync(maskPath, (await makeMask(tiny.dir)).bytes);
  model = await BaseModel.load({ model: tiny.dir });
  inProcess = createInferenceServer({
    classifiers: new Map<string, Classifier>([
      ["fashion", await createClassifier({ model, mask: maskPath, maskName: "fashion", classes: CLASSES })],
      ["zero-shot", await createClassifier({ model, classes: CLASSES })],
    ]),
  });
  pool = await createWorkerClassifiers({
    model: tiny.dir,
    classifiers: [{ name: "fashion", mask: maskPath }, { name: "zero-shot" }],
    classes: CLASSES,
    workers: 2,
    // One onnxruntime run for a whole long request below.
    batchSize: 512,
    onEvent: (e) => events.push(e),
  });
  inWorkers = createInferenceServer({ classifiers: pool.classifiers });
  baseIn = `http://127.0.0.1:${await inProcess.listen(0)}`;
  baseWorkers = `http://127.0.0.1:${await inWorkers.listen(0)}`;
}, 60_000);

afterAll(async () => {
  await inProcess?.close();
  await inWorkers?.close();
  await pool?.dispose();
  await model?.dispose();
  await tiny?.cleanup();
});

async function post(base: string, path: string, body: Uint8Array) {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    body: body as BodyInit,
    headers: { "content-type": "image/jpeg" },
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

describe("worker-backed unmask serve", () => {
  it("answers the same JSON as the in-process classifiers", async () => {
    for (const mask of ["fashion", "zero-shot"])
      for (const photo of photos) {
        const path = `/v1/classify?mask=${mask}&top=3`;
        const [a, b] = await Promise.all([post(baseIn, path, photo), post(baseWorkers, path, photo)]);
        expect(a.status).toBe(200);
        expect(b).toEqual(a);
      }
    const masks = await Promise.all(
      [baseIn, baseWorkers].map(async (b) => (await fetch(`${b}/v1/masks`)).json()),
    );
    expect(masks[1]).toEqual(masks[0]);
    expect(events.filter((e) => e.type === "worker-ready").map((e) => e.worker)).toEqual(
      expect.arrayContaining([0, 1]),
    );
  });

  it("answers an undecodable image with the same 400 INVALID_IMAGE", async () => {
    const a = await post(baseIn, "/v1/classify?mask=fashion", undecodable);
    const b = await post(baseWorkers, "/v1/classify?mask=fashion", undecodable);
    expect(a.status).toBe(400);
    expect(a.json.error.code).toBe("INVALID_IMAGE");
    expect(b).toEqual(a);
    // The worker's UnmaskError is rebuilt on this thread with its code.
    const error = await pool.classifiers
      .get("fashion")!
      .classify([undecodable])
      .catch((e) => e);
    expect(isUnmaskError(error, "IMAGE_DECODE_FAILED")).toBe(true);
    await expect(pool.classifiers.get("fashion")!.classify([photos[0]], { topK: 0 })).rejects.toMatchObject({
      code: "BAD_OPTION",
    });
  });

  it("answers /healthz while a long classification runs", async () => {
    // 600 preprocessed images in one onnxruntime run (batchSize 512): no decoding, only inference.
    const r = model.config.imageResolution;
    const images = Array.from({ length: 600 }, (_, i) => new Float32Array(3 * r * r).fill((i % 7) / 7 - 0.5));
    const race = async (classify: () => Promise<unknown[]>, base: string) => {
      const order: string[] = [];
      const long = classify().then((results) => {
        order.push("classify");
        return results;
      });
      const health = await fetch(`${base}/healthz`);
      order.push("healthz");
      expect(health.status).toBe(200);
      expect(((await health.json()) as any).status).toBe("ok");
      expect(await long).toHaveLength(600);
      return order;
    };
    const worker = pool.classifiers.get("zero-shot")!;
    expect(await race(() => worker.classify(images, { topK: 1 }), baseWorkers)).toEqual([
      "healthz",
      "classify",
    ]);
    // The control: in process, the run holds the event loop and /healthz waits for it.
    const local = await createClassifier({ model, classes: CLASSES, batchSize: 512 });
    try {
      expect(await race(() => local.classify(images, { topK: 1 }), baseIn)).toEqual(["classify", "healthz"]);
    } finally {
      await local.dispose();
    }
  });
});

describe("createWorkerClassifiers", () => {
  it("rebuilds a load error with its code", async () => {
    await expect(
      createWorkerClassifiers({
        model: join(tiny.root, "nowhere"),
        classifiers: [{ name: "x" }],
        classes: ["a"],
      }),
    ).rejects.toMatchObject({ code: "MODEL_DIR_INVALID" });
    await expect(
      createWorkerClassifiers({ model: tiny.dir, classifiers: [{ name: "x" }] }),
    ).rejects.toMatchObject({
      code: "BAD_OPTION",
    });
  });

  it("answers 503 for the requests of a worker that died, and restarts it", async () => {
    const seen: WorkerPoolEvent[] = [];
    const one = await createWorkerClassifiers({
      model: tiny.dir,
      classifiers: [{ name: "zero-shot" }],
      classes: CLASSES,
      onEvent: (e) => seen.push(e),
    });
    const server = createInferenceServer({ classifiers: one.classifiers });
    const base = `http://127.0.0.1:${await server.listen(0)}`;
    try {
      const before = await post(base, "/v1/classify?top=3", photos[2]);
      expect(before.status).toBe(200);
      // The crash message reaches the worker before the request does.
      (one as any)[CRASH_FOR_TEST](0);
      const during = await fetch(`${base}/v1/classify?top=3`, {
        method: "POST",
        body: photos[2] as BodyInit,
        headers: { "content-type": "image/jpeg" },
      });
      expect(during.status).toBe(503);
      expect(during.headers.get("retry-after")).toBe("1");
      expect(((await during.json()) as any).error.code).toBe("WORKER_CRASHED");
      while (seen.filter((e) => e.type === "worker-ready").length < 2)
        await new Promise((r) => setTimeout(r, 10));
      expect(seen.map((e) => e.type)).toEqual([
        "worker-ready",
        "worker-exit",
        "worker-restart",
        "worker-ready",
      ]);
      expect(seen[1]).toMatchObject({ worker: 0, failedRequests: 1, reason: "exit code 70" });
      expect(await post(base, "/v1/classify?top=3", photos[2])).toEqual(before);
    } finally {
      await server.close();
      await one.dispose();
    }
  });

  it("leaves no threads after dispose: the process exits on its own", async () => {
    const dist = fileURLToPath(new URL("../../dist/index.js", import.meta.url));
    const script = `
      const { createWorkerClassifiers } = await import(${JSON.stringify(dist)});
      const pool = await createWorkerClassifiers({ model: ${JSON.stringify(tiny.dir)},
        classifiers: [{ name: "z" }], classes: ["a", "b"], workers: 2 });
      const [r] = await pool.classifiers.get("z").classify([${JSON.stringify(fixturePath("text-image/n02123045_tabby.JPEG"))}]);
      await pool.dispose();
      console.log(JSON.stringify(r.top.length));
    `;
    const file = join(tiny.root, "dispose-check.mjs");
    writeFileSync(file, script);
    const { stdout } = await promisify(execFile)(process.execPath, [file], {
      timeout: 20_000,
      maxBuffer: 1 << 20,
    });
    expect(stdout.trim()).toBe("2");
  }, 30_000);
});
