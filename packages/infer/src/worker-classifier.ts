/**
 * createWorkerClassifiers: classifiers whose inference runs on worker threads, so the calling
 * thread's event loop stays free (onnxruntime-node's InferenceSession.run blocks the thread it
 * runs on for the whole inference).
 *
 * Each of the N workers loads the base model, every mask and every classifier head itself, from
 * paths: only image bytes (transferred, never shared) and results cross threads. A request goes
 * to the worker with the fewest requests in flight. UnmaskErrors thrown in a worker are rebuilt on
 * the calling thread with the same code, message and subject. A worker that dies fails its
 * in-flight requests with WORKER_CRASHED and is restarted (with a growing delay if it keeps
 * dying); nothing is printed, events go to `onEvent`.
 *
 * onnxruntime already spreads one run over all cores, so one worker is the usual choice; more
 * workers mostly add a copy of the model's memory each (set intraOpNumThreads to split the cores).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { UnmaskError } from "@unmask/mask-format";
import type { LoadBaseModelOptions } from "./base-model.js";
import type { Classification, Classifier } from "./classifier.js";

/** What a worker-backed classifier exposes: the part of Classifier that the server consumes. */
export interface WorkerClassifier {
  readonly name: string;
  readonly classNames: readonly string[];
  readonly headSource: Classifier["headSource"];
  /** A summary of the mask (null for zero-shot): what GET /v1/masks lists. */
  readonly mask: MaskSummary | null;
  /**
   * Classifies encoded images, preprocessed Float32Array [3, R, R] images, or paths. Arrays are
   * copied and the copies transferred: the caller's buffers stay usable.
   * @throws UnmaskError as createClassifier's classify does (IMAGE_DECODE_FAILED, BAD_OPTION, ...),
   *   WORKER_CRASHED when the worker died during the request, WORKER_UNAVAILABLE while every
   *   worker is restarting, WORKER_CLOSED after dispose
   */
  classify(images: readonly WorkerImage[], options?: { topK?: number }): Promise<Classification[]>;
}

/** An image a worker can take: encoded bytes, a preprocessed Float32Array [3, R, R], or a path. */
export type WorkerImage = Uint8Array | Float32Array | string;

export interface MaskSummary {
  readonly name: string;
  readonly maskedBytes: number;
  readonly mask: {
    readonly baseModel: { readonly name: string | null; readonly fingerprint: string };
    readonly tensorNames: readonly string[];
  };
}

export type WorkerPoolEvent =
  | { type: "worker-ready"; worker: number; ms: number }
  | { type: "worker-exit"; worker: number; reason: string; failedRequests: number }
  | { type: "worker-restart"; worker: number; delayMs: number };

export interface CreateWorkerClassifiersOptions
  extends Pick<LoadBaseModelOptions, "executionProvider" | "weightSharing" | "intraOpNumThreads"> {
  /** A model directory written by `unmask convert`. */
  model: string;
  /** The classifiers, in order: a mask path each, or no mask for zero-shot. */
  classifiers: readonly { name: string; mask?: string }[];
  /** Class names (for masks without a head, and zero-shot). */
  classes?: readonly string[];
  template?: string | readonly string[];
  /** Images per onnxruntime run inside a worker (createClassifier's batchSize). */
  batchSize?: number;
  /** Worker threads (default 1), each with its own copy of the model. */
  workers?: number;
  /** Worker lifecycle events (ready, exit, restart); the library never prints. */
  onEvent?: (event: WorkerPoolEvent) => void;
}

export interface WorkerClassifiers {
  /** By name, in the order given. */
  readonly classifiers: ReadonlyMap<string, WorkerClassifier>;
  readonly workers: number;
  /** Stops the workers (in-flight requests fail with WORKER_CLOSED); the process can then exit. */
  dispose(): Promise<void>;
}

/** @internal The structured-clone protocol with classifier-worker.ts. */
export interface WorkerInit {
  model: string;
  executionProvider?: LoadBaseModelOptions["executionProvider"];
  weightSharing?: LoadBaseModelOptions["weightSharing"];
  intraOpNumThreads?: number;
  classifiers: { name: string; mask?: string }[];
  classes?: string[];
  template?: string | string[];
  batchSize?: number;
}
/** @internal */
export interface ClassifierSummary {
  name: string;
  classNames: string[];
  headSource: Classifier["headSource"];
  mask: MaskSummary | null;
}
/** @internal */
export interface SerializedError {
  unmask: boolean;
  code: string;
  message: string;
  subject?: string;
}
/** @internal */
export type WorkerRequest =
  | { type: "classify"; id: number; name: string; images: WorkerImage[]; topK?: number }
  | { type: "dispose" }
  | { type: "crash-for-test" };
/** @internal */
export type WorkerReply =
  | { type: "ready"; classifiers: ClassifierSummary[] }
  | { type: "init-failed"; error: SerializedError }
  | { type: "result"; id: number; results: Classification[] }
  | { type: "failed"; id: number; error: SerializedError };

/** @internal Not re-exported: `pool[CRASH_FOR_TEST](worker)` makes that worker exit with code 70. */
export const CRASH_FOR_TEST = Symbol("unmask.crash-for-test");

/** Longest wait between restarts of a worker that keeps dying. */
const MAX_RESTART_DELAY_MS = 5_000;
/** How long dispose lets a worker release its sessions before terminating it. */
const DISPOSE_GRACE_MS = 5_000;

/**
 * The compiled worker script. Run from the TypeScript sources (vitest), the built copy in dist/
 * is used: worker threads cannot load .ts files.
 */
function workerScript(): URL {
  const here = new URL(import.meta.url);
  if (here.pathname.endsWith(".js")) return new URL("./classifier-worker.js", here);
  const built = new URL("../dist/classifier-worker.js", here);
  if (!existsSync(fileURLToPath(built)))
    throw new UnmaskError(
      "WORKER_SCRIPT_MISSING",
      `${fileURLToPath(built)} is missing; build @unmask/infer`,
      {
        subject: fileURLToPath(built),
      },
    );
  return built;
}

function rebuildError(error: SerializedError): Error {
  if (error.unmask)
    return new UnmaskError(
      error.code,
      error.message,
      error.subject === undefined ? undefined : { subject: error.subject },
    );
  return new Error(error.message);
}

interface Pending {
  resolve(results: Classification[]): void;
  reject(error: Error): void;
}

interface Slot {
  index: number;
  worker: Worker;
  pending: Map<number, Pending>;
  restarts: number;
  /** False between an exit and the restarted worker's spawn. */
  alive: boolean;
}

/**
 * Starts the workers and resolves once every one has loaded the model and all classifiers.
 * @throws UnmaskError the first worker's load error (MODEL_DIR_INVALID, FINGERPRINT_MISMATCH,
 *   BAD_OPTION, ...), BAD_OPTION for a bad `workers`, or a duplicate classifier name
 */
export async function createWorkerClassifiers(
  options: CreateWorkerClassifiersOptions,
): Promise<WorkerClassifiers> {
  const count = options.workers ?? 1;
  if (!Number.isSafeInteger(count) || count < 1)
    throw new UnmaskError("BAD_OPTION", `workers must be a positive integer, not ${count}`, {
      subject: "workers",
    });
  const names = options.classifiers.map((c) => c.name);
  if (names.length === 0)
    throw new UnmaskError("BAD_OPTION", "give at least one classifier", { subject: "classifiers" });
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined)
    throw new UnmaskError("BAD_OPTION", `classifier name ${duplicate} is given twice`, {
      subject: "classifiers",
    });
  const script = workerScript();
  const init: WorkerInit = {
    model: options.model,
    executionProvider: options.executionProvider,
    weightSharing: options.weightSharing,
    intraOpNumThreads: options.intraOpNumThreads,
    classifiers: options.classifiers.map((c) => ({ name: c.name, mask: c.mask })),
    classes: options.classes && [...options.classes],
    template:
      typeof options.template === "string" || !options.template ? options.template : [...options.template],
    batchSize: options.batchSize,
  };
  const slots: Slot[] = [];
  let nextId = 1;
  let disposed = false;
  let starting = true;
  let rotate = 0;

  const failAll = (slot: Slot, error: UnmaskError) => {
    const failed = slot.pending.size;
    for (const p of slot.pending.values()) p.reject(error);
    slot.pending.clear();
    return failed;
  };

  /** Spawns the worker of `slot`; resolves with its summaries, rejects with its load error. */
  const spawn = (slot: Slot): Promise<ClassifierSummary[]> => {
    const started = performance.now();
    const worker = new Worker(script, { workerData: init });
    slot.worker = worker;
    slot.alive = true;
    let loaded = false;
    let reason = "";
    return new Promise((resolve, reject) => {
      worker.on("message", (reply: WorkerReply) => {
        if (reply.type === "ready") {
          loaded = true;
          slot.restarts = 0;
          options.onEvent?.({ type: "worker-ready", worker: slot.index, ms: performance.now() - started });
          resolve(reply.classifiers);
        } else if (reply.type === "init-failed") {
          reason = `could not load: ${reply.error.code} ${reply.error.message}`;
          reject(rebuildError(reply.error));
          void worker.terminate();
        } else {
          const p = slot.pending.get(reply.id);
          if (!p) return;
          slot.pending.delete(reply.id);
          if (reply.type === "result") p.resolve(reply.results);
          else p.reject(rebuildError(reply.error));
        }
      });
      worker.on("error", (error) => {
        reason = error.message;
      });
      worker.on("exit", (code) => {
        if (worker !== slot.worker) return;
        slot.alive = false;
        if (disposed) {
          failAll(slot, new UnmaskError("WORKER_CLOSED", "the classifier workers were disposed"));
          return;
        }
        const why = reason || `exit code ${code}`;
        const failedRequests = failAll(
          slot,
          new UnmaskError("WORKER_CRASHED", `classifier worker ${slot.index} died (${why})`),
        );
        options.onEvent?.({ type: "worker-exit", worker: slot.index, reason: why, failedRequests });
        if (!loaded) {
          reject(
            new UnmaskError("WORKER_CRASHED", `classifier worker ${slot.index} died while loading (${why})`),
          );
          if (starting) return; // createWorkerClassifiers fails with the load error
        }
        const delayMs =
          slot.restarts === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** (slot.restarts - 1));
        slot.restarts++;
        options.onEvent?.({ type: "worker-restart", worker: slot.index, delayMs });
        setTimeout(() => {
          if (!disposed) spawn(slot).catch(() => {});
        }, delayMs).unref();
      });
    });
  };

  const loading: Promise<ClassifierSummary[]>[] = [];
  for (let index = 0; index < count; index++) {
    const slot = { index, pending: new Map(), restarts: 0, alive: false } as unknown as Slot;
    loading.push(spawn(slot));
    slots.push(slot);
  }
  let summaries: ClassifierSummary[];
  try {
    [summaries] = await Promise.all(loading);
    starting = false;
  } catch (error) {
    disposed = true;
    await Promise.all(slots.map((s) => s.worker.terminate()));
    throw error;
  }

  const send = (name: string, images: readonly WorkerImage[], topK?: number) => {
    if (disposed)
      return Promise.reject(new UnmaskError("WORKER_CLOSED", "the classifier workers were disposed"));
    // The least busy live worker; ties go round robin.
    rotate = (rotate + 1) % slots.length;
    let slot: Slot | undefined;
    for (let k = 0; k < slots.length; k++) {
      const s = slots[(rotate + k) % slots.length];
      if (s.alive && (!slot || s.pending.size < slot.pending.size)) slot = s;
    }
    if (!slot)
      return Promise.reject(
        new UnmaskError("WORKER_UNAVAILABLE", "every classifier worker is restarting; retry shortly"),
      );
    const target = slot;
    const transfer: ArrayBuffer[] = [];
    const payload = images.map((image) => {
      if (typeof image === "string") return image;
      // A copy (not .slice(), a view on a Buffer): the caller's bytes may be a view of a pooled
      // or shared buffer, which a transfer would detach.
      const copy = image instanceof Float32Array ? new Float32Array(image) : new Uint8Array(image);
      transfer.push(copy.buffer as ArrayBuffer);
      return copy;
    });
    const id = nextId++;
    return new Promise<Classification[]>((resolve, reject) => {
      target.pending.set(id, { resolve, reject });
      target.worker.postMessage(
        { type: "classify", id, name, images: payload, topK } satisfies WorkerRequest,
        transfer,
      );
    });
  };

  const classifiers = new Map<string, WorkerClassifier>(
    summaries.map((s) => [
      s.name,
      {
        name: s.name,
        classNames: s.classNames,
        headSource: s.headSource,
        mask: s.mask,
        async classify(images, { topK = 5 } = {}) {
          if (!Number.isSafeInteger(topK) || topK < 1)
            throw new UnmaskError("BAD_OPTION", `topK must be a positive integer, not ${topK}`, {
              subject: "topK",
            });
          if (images.length === 0) return [];
          return send(s.name, images, topK);
        },
      },
    ]),
  );

  const pool: WorkerClassifiers & { [CRASH_FOR_TEST](worker: number): void } = {
    classifiers,
    workers: count,
    [CRASH_FOR_TEST](worker: number) {
      slots[worker].worker.postMessage({ type: "crash-for-test" } satisfies WorkerRequest);
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      await Promise.all(
        slots.map(async (slot) => {
          const { worker } = slot;
          if (!slot.alive) return;
          const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
          worker.postMessage({ type: "dispose" } satisfies WorkerRequest);
          const timer = setTimeout(() => void worker.terminate(), DISPOSE_GRACE_MS);
          await exited;
          clearTimeout(timer);
        }),
      );
    },
  };
  return pool;
}
