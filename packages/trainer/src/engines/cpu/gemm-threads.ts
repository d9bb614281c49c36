/**
 * Worker threads for the GEMM: a product large enough is cut into slices of rows of C, one per
 * thread; the calling thread computes the first slice and blocks (Atomics.wait) until the workers
 * have done theirs. Every thread runs the same wasm gemm on the arena's shared memory with its own
 * packing scratch, and each element of C is summed in the same order whatever the slicing, so the
 * result is bit-identical to one thread's.
 *
 * A worker is a few lines of plain JavaScript (evaluated, so it runs the same from the sources
 * under test and from dist): it instantiates the gemm module on the shared memory, waits on its
 * control slot, runs the job written there and reports completion.
 *
 * Control slot of worker w (Int32 words): [0] job sequence (the worker waits for it to change;
 * -1 stops it), [1] last sequence done, [2] failure flag, [3..15] the 13 gemm arguments.
 */
import { Worker } from "node:worker_threads";
import { UnmaskError } from "@unmask/clip";
import { GEMM_SCRATCH_FLOATS, gemmKernelModule, TILE_ROWS } from "./gemm-kernel.js";
import type { WasmMemory } from "./wasm-runtime.js";

const SLOT_WORDS = 16;
/** A product under this many FLOPs runs on the calling thread alone (a wake-up costs ~10-50 us). */
export const PARALLEL_MIN_FLOP = 4e6;
/** How long the caller waits for a worker before declaring it dead. */
const WORKER_TIMEOUT_MS = 120_000;

const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { memory, module, control, slot, scratch } = workerData;
const { gemm } = new WebAssembly.Instance(module, { env: { memory } }).exports;
const ctl = new Int32Array(control, slot * ${SLOT_WORDS} * 4, ${SLOT_WORDS});
let seen = 0;
for (;;) {
  Atomics.wait(ctl, 0, seen);
  seen = Atomics.load(ctl, 0);
  if (seen < 0) break;
  try {
    gemm(ctl[3], ctl[4], ctl[5], ctl[6], ctl[7], ctl[8], ctl[9], ctl[10], ctl[11], ctl[12], ctl[13], ctl[14], scratch);
  } catch (error) {
    Atomics.store(ctl, 2, 1);
  }
  Atomics.store(ctl, 1, seen);
  Atomics.notify(ctl, 1);
}
`;

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
  private readonly control: Int32Array;
  private sequence = 0;

  /** `scratch(i)` allocates worker i's packing scratch (GEMM_SCRATCH_FLOATS floats) in the arena. */
  constructor(
    memory: WasmMemory,
    readonly threads: number,
    scratch: (worker: number) => Float32Array,
  ) {
    const helpers = threads - 1;
    this.control = new Int32Array(new SharedArrayBuffer(Math.max(1, helpers) * SLOT_WORDS * 4));
    const module = gemmKernelModule();
    for (let w = 0; w < helpers; w++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { memory, module, control: this.control.buffer, slot: w, scratch: scratch(w).byteOffset },
      });
      worker.unref(); // an engine that is never disposed must not keep the process alive
      this.workers.push(worker);
    }
  }

  /**
   * Runs the product with rows of C split across the threads; `own` computes one slice on the
   * calling thread (its arguments already sliced).
   */
  run(args: GemmArgs, own: (slice: GemmArgs) => void): void {
    const [transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate] = args;
    // slices of whole MR-row panels, as even as possible
    const panels = Math.ceil(m / TILE_ROWS);
    const parts = Math.min(this.threads, panels);
    const slices: GemmArgs[] = [];
    for (let t = 0; t < parts; t++) {
      const first = Math.floor((panels * t) / parts) * TILE_ROWS;
      const last = Math.min(m, Math.floor((panels * (t + 1)) / parts) * TILE_ROWS);
      const aStart = a + (transA ? first : first * lda) * 4;
      slices.push([
        transA,
        transB,
        last - first,
        n,
        k,
        aStart,
        lda,
        b,
        ldb,
        c + first * ldc * 4,
        ldc,
        accumulate,
      ]);
    }
    const seq = ++this.sequence;
    for (let t = 1; t < parts; t++) {
      const slot = (t - 1) * SLOT_WORDS;
      for (let i = 0; i < 12; i++) this.control[slot + 3 + i] = slices[t][i] | 0;
      Atomics.store(this.control, slot, seq);
      Atomics.notify(this.control, slot);
    }
    own(slices[0]);
    for (let t = 1; t < parts; t++) {
      const slot = (t - 1) * SLOT_WORDS;
      const started = Date.now();
      while (Atomics.load(this.control, slot + 1) !== seq) {
        Atomics.wait(this.control, slot + 1, Atomics.load(this.control, slot + 1), 1000);
        if (Date.now() - started > WORKER_TIMEOUT_MS)
          throw new UnmaskError(
            "CPU_WORKER_FAILED",
            `cpu engine: gemm worker ${t} did not answer in ${WORKER_TIMEOUT_MS} ms`,
          );
      }
      if (Atomics.load(this.control, slot + 2) !== 0)
        throw new UnmaskError("CPU_WORKER_FAILED", `cpu engine: gemm worker ${t} failed`);
    }
  }

  async close(): Promise<void> {
    for (let w = 0; w < this.workers.length; w++) {
      Atomics.store(this.control, w * SLOT_WORDS, -1);
      Atomics.notify(this.control, w * SLOT_WORDS);
    }
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}

export { GEMM_SCRATCH_FLOATS };
