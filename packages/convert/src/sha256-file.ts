/**
 * SHA-256 of a file, streamed through one reused buffer so memory stays flat for any file size.
 * `sha256FileInWorker` does the same on a worker thread, so that a conversion can hash the
 * source while it streams the tensors (the two passes then overlap instead of adding up).
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import { UnmaskError } from "@unmask/clip";
import { fail } from "./errors.js";

/** Read size per step: large enough that syscalls do not dominate, small enough to stay flat. */
const CHUNK_BYTES = 4 * 1024 * 1024;

export interface Sha256FileOptions {
  /** Called after each chunk with bytes hashed so far and the file size. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  signal?: AbortSignal;
}

/** Lower-case hex SHA-256 of the file at `path`. */
export async function sha256File(path: string, options: Sha256FileOptions = {}): Promise<string> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    const hash = createHash("sha256");
    const buffer = new Uint8Array(Math.min(CHUNK_BYTES, Math.max(1, size)));
    let done = 0;
    while (done < size) {
      if (options.signal?.aborted) fail("ABORTED", `hashing ${path} was aborted`, path);
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.byteLength, size - done), done);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      done += bytesRead;
      options.onProgress?.(done, size);
    }
    return hash.digest("hex");
  } finally {
    await handle.close();
  }
}

/** Progress messages from the worker are throttled to one per this many bytes. */
const PROGRESS_EVERY_BYTES = 16 * CHUNK_BYTES;

/** The worker's code: plain CommonJS, run with `eval`, so it needs no separate file in dist or src. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const fs = require("node:fs");
const fd = fs.openSync(workerData.path, "r");
try {
  const size = fs.fstatSync(fd).size;
  const hash = createHash("sha256");
  const buffer = Buffer.allocUnsafe(Math.min(${CHUNK_BYTES}, Math.max(1, size)));
  let done = 0;
  while (done < size) {
    const n = fs.readSync(fd, buffer, 0, Math.min(buffer.length, size - done), done);
    if (n === 0) break;
    hash.update(buffer.subarray(0, n));
    done += n;
    if (done % ${PROGRESS_EVERY_BYTES} === 0 || done === size) parentPort.postMessage({ bytesDone: done, bytesTotal: size });
  }
  parentPort.postMessage({ sha256: hash.digest("hex") });
} finally {
  fs.closeSync(fd);
}
`;

/** sha256File on a worker thread; the signal terminates the worker. */
export function sha256FileInWorker(path: string, options: Sha256FileOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted)
      return reject(new UnmaskError("ABORTED", `hashing ${path} was aborted`, { subject: path }));
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path } });
    let settled = false;
    const finish = (error: unknown, sha256?: string) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener("abort", onAbort);
      void worker.terminate();
      if (error) reject(error);
      else resolve(sha256!);
    };
    const onAbort = () =>
      finish(new UnmaskError("ABORTED", `hashing ${path} was aborted`, { subject: path }));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    worker.on("message", (message: { sha256?: string; bytesDone?: number; bytesTotal?: number }) => {
      if (message.sha256) finish(undefined, message.sha256);
      else options.onProgress?.(message.bytesDone!, message.bytesTotal!);
    });
    worker.on("error", (error) => finish(error));
    worker.on("exit", (code) => finish(new Error(`hash worker for ${path} exited with code ${code}`)));
  });
}
