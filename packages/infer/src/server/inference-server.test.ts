import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fixturePath } from "@unmask/fixtures";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertTinyModel, makeMask, type TinyModel } from "../../test/helpers/tiny-model.js";
import { BaseModel } from "../base-model.js";
import { type Classifier, createClassifier } from "../classifier.js";
import { createInferenceServer, type InferenceServer } from "./inference-server.js";
import { ConcurrencyLimiter, QueueFullError } from "./limiter.js";

let tiny: TinyModel;
let model: BaseModel;
let server: InferenceServer;
let base: string;
let jpeg: Uint8Array;

beforeAll(async () => {
  tiny = await convertTinyModel();
  model = await BaseModel.load({ model: tiny.dir });
  const { bytes } = await makeMask(tiny.dir);
  const classifiers = new Map<string, Classifier>([
    ["fashion", await createClassifier({ model, mask: bytes, classes: ["shirt", "shoe", "bag"] })],
    ["zero-shot", await createClassifier({ model, classes: ["shirt", "shoe", "bag"] })],
  ]);
  server = createInferenceServer({ classifiers, limits: { maxBodyBytes: 200_000, maxImageSide: 1000 } });
  base = `http://127.0.0.1:${await server.listen(0)}`;
  jpeg = readFileSync(fixturePath("text-image/n02123045_tabby.JPEG"));
}, 60_000);

afterAll(async () => {
  await server?.close();
  await model?.dispose();
  await tiny?.cleanup();
});

async function post(path: string, body: Uint8Array | FormData, type = "image/jpeg") {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    body: body as BodyInit,
    headers: body instanceof FormData ? {} : { "content-type": type },
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

describe("unmask serve API", () => {
  it("classifies raw image bytes and multipart uploads", async () => {
    const raw = await post("/v1/classify?mask=fashion&top=2", jpeg);
    expect(raw.status).toBe(200);
    expect(raw.json.mask).toBe("fashion");
    expect(raw.json.predictions).toHaveLength(2);
    expect(["shirt", "shoe", "bag"]).toContain(raw.json.label);
    const form = new FormData();
    form.append("image", new Blob([jpeg as BlobPart], { type: "image/jpeg" }), "cat.jpg");
    const multi = await post("/v1/classify?mask=fashion&top=2", form);
    expect(multi.status).toBe(200);
    expect(multi.json.predictions).toEqual(raw.json.predictions);
    // No mask named: the first one.
    expect((await post("/v1/classify", jpeg)).json.mask).toBe("fashion");
  });

  it("answers bad input with structured 4xx errors", async () => {
    const corrupt = await post("/v1/classify?mask=fashion", new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3, 4]));
    expect(corrupt.status).toBe(400);
    expect(corrupt.json.error.code).toBe("INVALID_IMAGE");
    expect((await post("/v1/classify?mask=nope", jpeg)).json.error.code).toBe("UNKNOWN_MASK");
    expect((await post("/v1/classify?mask=nope", jpeg)).status).toBe(404);
    for (const top of ["0", "-1", "abc", "101"]) {
      const r = await post(`/v1/classify?top=${top}`, jpeg);
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe("BAD_TOP");
    }
    const big = await post("/v1/classify", new Uint8Array(300_000));
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe("PAYLOAD_TOO_LARGE");
    const wide = await sharp({ create: { width: 1200, height: 10, channels: 3, background: "#fff" } })
      .png()
      .toBuffer();
    const tooWide = await post("/v1/classify", wide, "image/png");
    expect(tooWide.status).toBe(413);
    expect(tooWide.json.error.code).toBe("IMAGE_TOO_LARGE");
    const text = await post("/v1/classify", new TextEncoder().encode("hello"), "text/plain");
    expect(text.status).toBe(415);
    const empty = await post("/v1/classify", new Uint8Array(0));
    expect(empty.json.error.code).toBe("NO_IMAGE");
    const missing = await fetch(`${base}/v2/nothing`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as any).error.code).toBe("NOT_FOUND");
    expect((await fetch(`${base}/v1/classify`)).status).toBe(405);
  });

  it("lists masks and reports health", async () => {
    const masks = (await (await fetch(`${base}/v1/masks`)).json()) as any;
    expect(masks.default).toBe("fashion");
    expect(masks.masks.map((m: any) => m.name)).toEqual(["fashion", "zero-shot"]);
    expect(masks.masks[0].maskedBytes).toBeGreaterThan(0);
    expect(masks.masks[1].zeroShot).toBe(true);
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as any).status).toBe("ok");
  });
});

describe("ConcurrencyLimiter", () => {
  it("runs at most maxConcurrent, queues up to maxQueued, refuses beyond", async () => {
    const limiter = new ConcurrencyLimiter(1, 1);
    const first = await limiter.acquire();
    const second = limiter.acquire();
    await expect(limiter.acquire()).rejects.toBeInstanceOf(QueueFullError);
    expect(limiter.inFlight).toBe(1);
    expect(limiter.queued).toBe(1);
    first();
    first(); // a second call is a no-op
    const releaseSecond = await second;
    expect(limiter.inFlight).toBe(1);
    releaseSecond();
    expect(limiter.inFlight).toBe(0);
  });
});

describe("SIGTERM", () => {
  it("drains an in-flight request and exits 0", async () => {
    const cli = fileURLToPath(new URL("../../../cli/bin/unmask.js", import.meta.url));
    const child = spawn(
      process.execPath,
      [cli, "serve", "--model", tiny.dir, "--classes", "a,b", "--port", "0"],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let stderr = "";
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
        if (m) resolve(Number(m[1]));
      });
      child.on("exit", (code) => reject(new Error(`serve exited early (${code}): ${stderr}`)));
    });
    const inFlight = fetch(`http://127.0.0.1:${port}/v1/classify?top=1`, {
      method: "POST",
      body: jpeg as BodyInit,
      headers: { "content-type": "image/jpeg" },
    });
    await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGTERM");
    const res = await inFlight;
    expect(res.status).toBe(200);
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(0);
    expect(stderr).toContain("draining");
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  }, 30_000);
});
