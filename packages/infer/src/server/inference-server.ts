/**
 * The HTTP JSON API of `unmask serve` (node:http, no framework):
 *
 *   POST /v1/classify?mask=NAME&top=K   image bytes or multipart/form-data -> labels and scores
 *   GET  /v1/masks                      the loaded masks (classifiers)
 *   GET  /healthz                       liveness and load
 *
 * Every failure is a JSON `{ error: { code, message } }` with a 4xx for bad input (400 corrupt
 * image or bad parameter, 404 unknown mask or route, 405, 413 body or image too large, 415 media
 * type, 429 queue full with Retry-After); an unexpected failure is a 500 that never takes the
 * process down; a classifier worker that died or is restarting (createWorkerClassifiers) is a 503
 * with Retry-After. Image dimensions are checked from the header (sharp metadata) before decoding.
 * With worker-backed classifiers inference never blocks this thread, so /healthz, new connections
 * and request timeouts are served during a classification.
 * close() stops accepting connections, lets in-flight requests finish, then resolves.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isUnmaskError } from "@unmask/mask-format";
import sharp from "sharp";
import type { Classification, Classifier } from "../classifier.js";
import { HttpError } from "./http-error.js";
import { ConcurrencyLimiter, QueueFullError } from "./limiter.js";
import { readImageBody } from "./request-body.js";

export interface ServerLimits {
  /** Largest request body in bytes (default 10 MB). */
  maxBodyBytes: number;
  /** Largest image side in pixels (default 8192). */
  maxImageSide: number;
  /** Largest image area in pixels (default 40 megapixels): a decompression-bomb guard. */
  maxImagePixels: number;
  /** Classifications running at once (default 2); onnxruntime uses the cores within each. */
  maxConcurrent: number;
  /** Requests waiting for a slot before 429 (default 64). */
  maxQueued: number;
  /** Per-request time budget in ms, body read to answer (default 30 s), then 503. */
  requestTimeoutMs: number;
  /** Largest `top` accepted (default 100). */
  maxTopK: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxBodyBytes: 10 * 1024 * 1024,
  maxImageSide: 8192,
  maxImagePixels: 40_000_000,
  maxConcurrent: 2,
  maxQueued: 64,
  requestTimeoutMs: 30_000,
  maxTopK: 100,
};

/**
 * What the server needs of a classifier: an in-process Classifier (createClassifier) or a
 * worker-backed one (createWorkerClassifiers, which keeps inference off the event loop).
 */
export interface ServedClassifier {
  readonly classNames: readonly string[];
  readonly headSource: Classifier["headSource"];
  readonly mask: {
    readonly maskedBytes: number;
    readonly mask: { readonly baseModel: unknown; readonly tensorNames: readonly string[] };
  } | null;
  classify(images: readonly Uint8Array[], options?: { topK?: number }): Promise<Classification[]>;
}

/** Worker faults (createWorkerClassifiers): the server's fault, answered 503 with Retry-After. */
const WORKER_FAULTS = new Set(["WORKER_CRASHED", "WORKER_UNAVAILABLE", "WORKER_CLOSED"]);

export interface InferenceServerOptions {
  /** Classifiers by mask name; the first is the default when a request names none. */
  classifiers: ReadonlyMap<string, ServedClassifier>;
  limits?: Partial<ServerLimits>;
  /** Called for each answered request (access logs, metrics); never for the library to print. */
  onRequest?: (event: { method: string; path: string; status: number; ms: number; code?: string }) => void;
}

export interface InferenceServer {
  readonly server: Server;
  readonly limits: ServerLimits;
  /** Starts listening; resolves with the bound port. */
  listen(port: number, host?: string): Promise<number>;
  /** Stops accepting, waits for in-flight requests (at most `drainMs`), then closes. */
  close(drainMs?: number): Promise<void>;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function parseTop(value: string | null, max: number): number {
  if (value === null) return 5;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max)
    throw new HttpError(
      400,
      "BAD_TOP",
      `top must be an integer from 1 to ${max}, not ${JSON.stringify(value)}`,
    );
  return Number(value);
}

async function checkDimensions(bytes: Buffer, limits: ServerLimits): Promise<void> {
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await sharp(bytes, { limitInputPixels: false }).metadata());
  } catch (cause) {
    throw new HttpError(
      400,
      "INVALID_IMAGE",
      `the body is not a readable image (${(cause as Error).message})`,
    );
  }
  if (!width || !height) throw new HttpError(400, "INVALID_IMAGE", "the image has no dimensions");
  if (width > limits.maxImageSide || height > limits.maxImageSide || width * height > limits.maxImagePixels)
    throw new HttpError(
      413,
      "IMAGE_TOO_LARGE",
      `the image is ${width}x${height}; the limits are ${limits.maxImageSide} px a side and ${limits.maxImagePixels} pixels`,
    );
}

export function createInferenceServer(options: InferenceServerOptions): InferenceServer {
  const limits: ServerLimits = { ...DEFAULT_SERVER_LIMITS, ...options.limits };
  const limiter = new ConcurrencyLimiter(limits.maxConcurrent, limits.maxQueued);
  const names = [...options.classifiers.keys()];
  let closing = false;
  let active = 0;

  const classify = async (req: IncomingMessage, url: URL): Promise<unknown> => {
    const maskName = url.searchParams.get("mask") ?? names[0];
    const classifier = options.classifiers.get(maskName);
    if (!classifier)
      throw new HttpError(
        404,
        "UNKNOWN_MASK",
        `no mask named ${JSON.stringify(maskName)}; loaded: ${names.join(", ")}`,
      );
    const top = parseTop(url.searchParams.get("top"), limits.maxTopK);
    const bytes = await readImageBody(req, limits.maxBodyBytes);
    await checkDimensions(bytes, limits);
    let release: () => void;
    try {
      release = await limiter.acquire();
    } catch (error) {
      if (error instanceof QueueFullError)
        throw new HttpError(429, "QUEUE_FULL", "too many requests are waiting; retry shortly", {
          "retry-after": "1",
        });
      throw error;
    }
    try {
      const [result] = await classifier.classify(
        [new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)],
        {
          topK: top,
        },
      );
      return {
        mask: maskName,
        label: result.label,
        score: result.score,
        predictions: result.top.map((t) => ({ label: t.label, score: t.score })),
      };
    } catch (error) {
      if (isUnmaskError(error) && (error.code === "IMAGE_DECODE_FAILED" || error.code === "BAD_IMAGE"))
        throw new HttpError(400, "INVALID_IMAGE", error.message);
      if (isUnmaskError(error) && WORKER_FAULTS.has(error.code))
        throw new HttpError(503, error.code, error.message, { "retry-after": "1" });
      throw error;
    } finally {
      release();
    }
  };

  const route = async (req: IncomingMessage, url: URL): Promise<{ status: number; body: unknown }> => {
    const path = url.pathname;
    if (path === "/healthz") {
      if (req.method !== "GET" && req.method !== "HEAD")
        throw new HttpError(405, "METHOD_NOT_ALLOWED", "use GET");
      return {
        status: closing ? 503 : 200,
        body: {
          status: closing ? "draining" : "ok",
          masks: names.length,
          inFlight: limiter.inFlight,
          queued: limiter.queued,
        },
      };
    }
    if (path === "/v1/masks") {
      if (req.method !== "GET") throw new HttpError(405, "METHOD_NOT_ALLOWED", "use GET");
      return {
        status: 200,
        body: {
          default: names[0],
          masks: names.map((name) => {
            const c = options.classifiers.get(name)!;
            return {
              name,
              zeroShot: c.mask === null,
              classes: c.classNames,
              head: c.headSource,
              baseModel: c.mask?.mask.baseModel ?? null,
              tensors: c.mask?.mask.tensorNames.length ?? 0,
              maskedBytes: c.mask?.maskedBytes ?? 0,
            };
          }),
        },
      };
    }
    if (path === "/v1/classify") {
      if (req.method !== "POST")
        throw new HttpError(405, "METHOD_NOT_ALLOWED", "use POST with the image as the body");
      return { status: 200, body: await classify(req, url) };
    }
    throw new HttpError(404, "NOT_FOUND", `no route ${req.method} ${path}`);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    active++;
    let status = 500;
    let code: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    const url = new URL(req.url ?? "/", "http://localhost");
    try {
      if (closing)
        throw new HttpError(503, "SHUTTING_DOWN", "the server is shutting down", { connection: "close" });
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new HttpError(503, "TIMEOUT", `no answer within ${limits.requestTimeoutMs} ms`, {
                "retry-after": "1",
              }),
            ),
          limits.requestTimeoutMs,
        );
      });
      const result = await Promise.race([route(req, url), timeout]);
      status = result.status;
      sendJson(res, status, result.body);
    } catch (error) {
      if (error instanceof HttpError) {
        status = error.status;
        code = error.code;
        const headers = { ...error.headers };
        // A body we stopped reading cannot leave the connection reusable.
        if (status === 413 || status === 415) headers.connection = "close";
        sendJson(res, status, { error: { code: error.code, message: error.message } }, headers);
      } else if (isUnmaskError(error)) {
        status = 500;
        code = error.code;
        sendJson(res, status, { error: { code: error.code, message: error.message } });
      } else {
        status = 500;
        code = "INTERNAL";
        sendJson(res, 500, { error: { code: "INTERNAL", message: "unexpected server error" } });
      }
    } finally {
      clearTimeout(timer);
      active--;
      options.onRequest?.({
        method: req.method ?? "?",
        path: url.pathname,
        status,
        ms: performance.now() - started,
        code,
      });
    }
  };

  const server = createServer(
    { requestTimeout: limits.requestTimeoutMs + 5_000, headersTimeout: 10_000 },
    (req, res) => {
      handle(req, res).catch(() => {
        if (!res.headersSent)
          sendJson(res, 500, { error: { code: "INTERNAL", message: "unexpected server error" } });
      });
    },
  );
  server.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
  });

  return {
    server,
    limits,
    listen(port, host = "127.0.0.1") {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve((server.address() as AddressInfo).port);
        });
      });
    },
    async close(drainMs = 30_000) {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = Date.now() + drainMs;
      while ((active > 0 || limiter.inFlight > 0) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      server.closeAllConnections();
      await closed;
    },
  };
}
