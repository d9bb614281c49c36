/**
 * Worker threads that build the image cache (image-cache.ts) with @unmask/clip's own functions, so
 * their bytes are clipImageIo's:
 *
 * - decodeInto: a file decoded (loadImage: sharp, as Pillow opens it), resized when it is not
 *   already size x size (Pillow-exact bicubic, resizeRgb) and written straight into the shared
 *   cache at its slot; only the original width and height come back. sharp's decoding runs on
 *   libuv's pool either way, but the JavaScript around each call (reading the file, building the
 *   pipeline, settling its promise, copying the pixels) then runs on the workers instead of all on
 *   the calling thread, which bounded decoding at ~1,500 images/s on a 16-core machine however
 *   many libuv threads decoded (bench/device/NOTES.md, run N).
 * - resize: in-memory pixels resized (about 3 ms for a 500 x 375 photo to 224 x 224), sent back.
 *
 * A worker is a few lines of plain JavaScript (evaluated, so it runs the same from the sources
 * under test and from dist) that imports @unmask/clip's built entry (UNMASK_CLIP_ENTRY overrides
 * where: a bundle has no node_modules).
 */
import { createRequire } from "node:module";
import { isAbsolute } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { UnmaskError } from "@unmask/clip";
import type { RgbImage } from "./image-io.js";

interface Job {
  resolve: (result: { data?: Uint8Array; width: number; height: number }) => void;
  reject: (error: unknown) => void;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const cache = workerData.cache ? new Uint8Array(workerData.cache) : undefined;
const fail = (id, error) =>
  parentPort.postMessage({ id, error: { code: error?.code, message: String(error?.message ?? error), subject: error?.subject } });
import(workerData.clipUrl).then(
  (clip) => {
    parentPort.on("message", async ({ id, path, offset, size, image, width, height }) => {
      try {
        if (path !== undefined) {
          const rgb = await clip.loadImage(path);
          const same = rgb.width === size && rgb.height === size;
          cache.set(same ? rgb.data : clip.resizeRgb(rgb, size, size, "bicubic").data, offset);
          parentPort.postMessage({ id, width: rgb.width, height: rgb.height });
        } else {
          const out = clip.resizeRgb(image, width, height, "bicubic").data;
          parentPort.postMessage({ id, data: out, width, height }, [out.buffer]);
        }
      } catch (error) {
        fail(id, error);
      }
    });
    parentPort.postMessage({ ready: true });
  },
  (error) => parentPort.postMessage({ failed: String(error?.message ?? error) }),
);
`;

/** Where the workers import @unmask/clip from: UNMASK_CLIP_ENTRY, else its built entry as this module resolves it. */
function clipEntryUrl(): string {
  const entry = process.env.UNMASK_CLIP_ENTRY;
  if (entry) return isAbsolute(entry) ? pathToFileURL(entry).href : entry;
  return pathToFileURL(createRequire(import.meta.url).resolve("@unmask/clip")).href;
}

export class ImagePool {
  private readonly workers: Worker[] = [];
  private readonly jobs = new Map<number, Job>();
  /** Jobs in flight per worker. */
  private readonly load: number[] = [];
  private readonly owner = new Map<number, number>();
  private nextId = 0;
  private failure: UnmaskError | undefined;
  private readonly ready: Promise<void>;

  /** `cache`: the shared cache decodeInto writes into (resize-only pools need none). */
  constructor(
    readonly threads: number,
    cache?: SharedArrayBuffer,
  ) {
    const clipUrl = clipEntryUrl();
    const started: Promise<void>[] = [];
    for (let w = 0; w < threads; w++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { clipUrl, cache } });
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
    const { data } = await this.run({ image, width, height });
    return data as Uint8Array;
  }

  /**
   * The file at `path` decoded to RGB, resized to size x size unless it is that already, written
   * into the shared cache at byte `offset`; its original width and height.
   */
  async decodeInto(path: string, size: number, offset: number): Promise<{ width: number; height: number }> {
    const { width, height } = await this.run({ path, size, offset });
    return { width, height };
  }

  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  private async run(message: object): Promise<{ data?: Uint8Array; width: number; height: number }> {
    await this.ready;
    if (this.failure) throw this.failure;
    const w = this.load.indexOf(Math.min(...this.load));
    const id = this.nextId++;
    this.load[w]++;
    this.owner.set(id, w);
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      this.workers[w].postMessage({ id, ...message });
    });
  }

  private settle(message: {
    id: number;
    data?: Uint8Array;
    width: number;
    height: number;
    error?: { code?: string; message: string; subject?: string };
  }): void {
    const job = this.jobs.get(message.id);
    if (!job) return;
    this.jobs.delete(message.id);
    this.load[this.owner.get(message.id) as number]--;
    this.owner.delete(message.id);
    if (message.error) {
      const { code, message: text, subject } = message.error;
      job.reject(new UnmaskError(code ?? "IMAGE_WORKER_FAILED", text, { subject }));
    } else job.resolve(message);
  }

  /** A worker died or could not start: every waiting and later call fails with this error. */
  private fail(reason: string): UnmaskError {
    this.failure ??= new UnmaskError("IMAGE_WORKER_FAILED", `image cache: an image worker failed: ${reason}`);
    for (const job of this.jobs.values()) job.reject(this.failure);
    this.jobs.clear();
    return this.failure;
  }
}
