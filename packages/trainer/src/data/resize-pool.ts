/**
 * Worker threads that resize images for the image cache (image-cache.ts) with @unmask/clip's
 * Pillow-exact bicubic resize (clipImageIo.resize). The resize is JavaScript and the costly part of
 * building the cache (about 3 ms for a 500 x 375 photo to 224 x 224, against 1.5-2.5 ms to read
 * and decode it on libuv's pool), and JavaScript runs on one thread: so the calling thread decodes
 * (sharp, off-thread) and hands each image that needs resizing to the least busy worker, which
 * sends back only the resized pixels. An image's pixels are copied to the worker (Node copies
 * buffers sharp allocated instead of transferring them: ~0.05 ms for 500 x 375) and the result is
 * transferred back.
 *
 * A worker is a few lines of plain JavaScript (evaluated, so it runs the same from the sources
 * under test and from dist) that imports @unmask/clip's built entry, the same resizeRgb
 * clipImageIo.resize calls, so its bytes are clipImageIo's.
 */
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { UnmaskError } from "@unmask/clip";
import type { RgbImage } from "./image-io.js";

interface Job {
  resolve: (pixels: Uint8Array) => void;
  reject: (error: unknown) => void;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
import(workerData.clipUrl).then(
  (clip) => {
    parentPort.on("message", ({ id, image, width, height }) => {
      try {
        const out = clip.resizeRgb(image, width, height, "bicubic").data;
        parentPort.postMessage({ id, data: out }, [out.buffer]);
      } catch (error) {
        parentPort.postMessage({ id, error: { code: error?.code, message: String(error?.message ?? error), subject: error?.subject } });
      }
    });
    parentPort.postMessage({ ready: true });
  },
  (error) => parentPort.postMessage({ failed: String(error?.message ?? error) }),
);
`;

/** Where the workers import @unmask/clip from: its built entry, as this module resolves it. */
function clipEntryUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve("@unmask/clip")).href;
}

export class ResizePool {
  private readonly workers: Worker[] = [];
  private readonly jobs = new Map<number, Job>();
  /** Jobs in flight per worker. */
  private readonly load: number[] = [];
  private readonly owner = new Map<number, number>();
  private nextId = 0;
  private failure: UnmaskError | undefined;
  private readonly ready: Promise<void>;

  constructor(readonly threads: number) {
    const clipUrl = clipEntryUrl();
    const started: Promise<void>[] = [];
    for (let w = 0; w < threads; w++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { clipUrl } });
      this.workers.push(worker);
      this.load.push(0);
      started.push(
        new Promise((resolve, reject) => {
          worker.on("message", (message) => {
            if (message.ready) resolve();
            else if (message.failed) reject(this.fail(`cannot load @unmask/clip: ${message.failed}`));
            else this.settle(message);
          });
          worker.on("error", (error) => reject(this.fail(error.message)));
          worker.on("exit", (code) => {
            if (this.workers.length > 0) reject(this.fail(`exited with code ${code}`));
          });
        }),
      );
    }
    this.ready = Promise.all(started).then(() => undefined);
    this.ready.catch(() => undefined); // reported by the calls that await it
  }

  /** `image` resized to width x height (RGB bytes), on the least busy worker. */
  async resize(image: RgbImage, width: number, height: number): Promise<Uint8Array> {
    await this.ready;
    if (this.failure) throw this.failure;
    const w = this.load.indexOf(Math.min(...this.load));
    const id = this.nextId++;
    this.load[w]++;
    this.owner.set(id, w);
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      this.workers[w].postMessage({ id, image, width, height });
    });
  }

  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  private settle(message: {
    id: number;
    data: Uint8Array;
    error?: { code?: string; message: string; subject?: string };
  }): void {
    const job = this.jobs.get(message.id);
    if (!job) return;
    this.jobs.delete(message.id);
    this.load[this.owner.get(message.id) as number]--;
    this.owner.delete(message.id);
    if (message.error) {
      const { code, message: text, subject } = message.error;
      job.reject(new UnmaskError(code ?? "RESIZE_WORKER_FAILED", text, { subject }));
    } else job.resolve(message.data);
  }

  /** A worker died or could not start: every waiting and later call fails with this error. */
  private fail(reason: string): UnmaskError {
    this.failure ??= new UnmaskError(
      "RESIZE_WORKER_FAILED",
      `image cache: a resize worker failed: ${reason}`,
    );
    for (const job of this.jobs.values()) job.reject(this.failure);
    this.jobs.clear();
    return this.failure;
  }
}
