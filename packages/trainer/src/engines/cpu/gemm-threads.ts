/**
 * Worker threads for the GEMM. A product large enough is cut into chunks of rows of C (whole
 * MR-row panels), and every thread, the caller included, takes chunks from
 * a shared counter until none are left; the caller then waits (Atomics.wait) for the chunks others
 * took. Taking chunks rather than fixed halves keeps a busy machine from stalling the step on one
 * descheduled thread. Every thread runs the same wasm gemm on the arena's shared memory with its
 * own packing scratch, and each element of C is summed in the same order whatever the chunking,
 * so the result is bit-identical to one thread's.
 *
 * A worker is a few lines of plain JavaScript (evaluated, so it runs the same from the sources
 * under test and from dist): it instantiates the module on the shared memory and waits for jobs.
 *
 * Control block (Int32 words): [0] job sequence (workers wait for it to change; -1 stops them),
 * [1] next chunk to take, [2] chunks done, [3] chunk count, [4] failure flag,
 * [HEADER + 12 c ...] the 12 gemm arguments of chunk c.
 */
import { Worker } from "node:worker_threads";
import { UnmaskError } from "@unmask/clip";
import { TILE_ROWS } from "./gemm-kernel.js";
import { gemmKernelModule } from "./kernel-module.js";
import { workerTaskLoopSource } from "./task-loop.js";
import type { WasmMemory } from "./wasm-runtime.js";

const HEADER = 8;
const ARGS = 12;
/**
 * Fewest rows per chunk: each chunk packs all of B again, so a product with few rows (the weight
 * gradients: m = output width, k = tokens) is cut into few chunks.
 */
const MIN_CHUNK_ROWS = 8 * TILE_ROWS;
/** Most chunks per product: a few per thread, so a slow thread holds up at most one. */
const MAX_CHUNKS = 16;
/** A product under this many FLOPs runs on the calling thread alone (a wake-up costs ~10-50 us). */
export const PARALLEL_MIN_FLOP = 4e6;
/** How long the caller waits for a worker's chunk before declaring the worker dead. */
const WORKER_TIMEOUT_MS = 120_000;

const WORKER_SOURCE = workerTaskLoopSource(
  `const { workerData } = require("node:worker_threads");
const { memory, module, control, scratch } = workerData;
const { gemm } = new WebAssembly.Instance(module, { env: { memory } }).exports;
const ctl = new Int32Array(control);`,
  `const a = ${HEADER} + t * ${ARGS};
      gemm(ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6], ctl[a + 7],
        ctl[a + 8], ctl[a + 9], ctl[a + 10], ctl[a + 11], scratch);`,
);

export type GemmArgs = [
  transA: number,
  transB: number,
  m: number,
  n: number,
  k: number,
  a: number,
  lda: number,
  b: number,
  ldb: number,
  c: number,
  ldc: number,
  accumulate: number,
];

export class GemmThreads {
  private readonly workers: Worker[] = [];
  private readonly control = new Int32Array(new SharedArrayBuffer((HEADER + MAX_CHUNKS * ARGS) * 4));
  private sequence = 0;

  /** `scratch(i)` allocates helper i's packing scratch (GEMM_SCRATCH_FLOATS floats) in the arena. */
  constructor(
    memory: WasmMemory,
    readonly threads: number,
    scratch: (worker: number) => Float32Array,
  ) {
    const module = gemmKernelModule();
    for (let w = 0; w < threads - 1; w++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { memory, module, control: this.control.buffer, scratch: scratch(w).byteOffset },
      });
      worker.unref(); // an engine that is never disposed must not keep the process alive
      this.workers.push(worker);
    }
  }

  /** Runs the product over the threads; `own` runs one chunk (its arguments) on the calling thread. */
  run(args: GemmArgs, own: (chunk: GemmArgs) => void): void {
    const [transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate] = args;
    const panels = Math.ceil(m / TILE_ROWS);
    const chunks = Math.max(1, Math.min(MAX_CHUNKS, 2 * this.threads, Math.floor(m / MIN_CHUNK_ROWS)));
    const ctl = this.control;
    for (let t = 0; t < chunks; t++) {
      const first = Math.floor((panels * t) / chunks) * TILE_ROWS;
      const last = Math.min(m, Math.floor((panels * (t + 1)) / chunks) * TILE_ROWS);
      const chunk: GemmArgs = [
        transA,
        transB,
        last - first,
        n,
        k,
        a + (transA ? first : first * lda) * 4,
        lda,
        b,
        ldb,
        c + first * ldc * 4,
        ldc,
        accumulate,
      ];
      for (let i = 0; i < ARGS; i++) ctl[HEADER + t * ARGS + i] = chunk[i] | 0;
    }
    // arguments first, then the counters, then the sequence that wakes the workers
    Atomics.store(ctl, 3, chunks);
    Atomics.store(ctl, 2, 0);
    Atomics.store(ctl, 1, 0);
    Atomics.store(ctl, 0, ++this.sequence);
    Atomics.notify(ctl, 0);
    for (;;) {
      const t = Atomics.add(ctl, 1, 1);
      if (t >= chunks) break;
      const base = HEADER + t * ARGS;
      own(Array.from(ctl.subarray(base, base + ARGS), (v) => v >>> 0) as GemmArgs);
      Atomics.add(ctl, 2, 1);
    }
    const started = Date.now();
    for (let done = Atomics.load(ctl, 2); done < chunks; done = Atomics.load(ctl, 2)) {
      Atomics.wait(ctl, 2, done, 1000);
      if (Date.now() - started > WORKER_TIMEOUT_MS)
        throw new UnmaskError(
          "CPU_WORKER_FAILED",
          `cpu engine: a gemm worker did not finish in ${WORKER_TIMEOUT_MS} ms`,
        );
    }
    if (Atomics.load(ctl, 4) !== 0)
      throw new UnmaskError("CPU_WORKER_FAILED", "cpu engine: a gemm worker failed");
  }

  async close(): Promise<void> {
    Atomics.store(this.control, 0, -1);
    Atomics.notify(this.control, 0);
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}
