/**
 * Row-local steps over worker threads: the non-GEMM work of a transformer forward (bias adds,
 * residual adds, LayerNorm, QuickGELU, causal or full attention per sequence) cut into ranges of
 * rows (or of sequences, for attention) that every thread, the caller included, takes from a
 * shared counter, as gemm-threads.ts does for the GEMMs. A job is a short program of steps that
 * each task runs in order on its own range: a row's result comes from that row alone (a
 * sequence's from that sequence alone), through the same WebAssembly kernels
 * (elementwise-kernel.ts, the gemm of gemm-kernel.ts) in the same order whatever the range, so the
 * output is bit-identical for any thread count, and identical to the calling-thread functions
 * (layernorm.ts, quick-gelu.ts, matmul.ts's bias, block.ts's residual add, attention.ts's
 * forward).
 *
 * The step code is one JavaScript source (STEP_SOURCE), evaluated in every worker and on the
 * calling thread, so that all run the same code. Every array is a byte offset in the arena's
 * shared memory; widths must be multiples of 4 (the SIMD kernels' unit). Each thread has its own
 * scratch (the small attention GEMMs' packing, gathered rows).
 *
 * Control block (Int32 words): [0] job sequence (workers wait for it to change; -1 stops them),
 * [1] next task to take, [2] tasks done, [3] task count, [4] failure flag, [5] step count,
 * [6] units (rows or sequences), [7] rows per unit, [HEADER + STEP_WORDS s ...] step s: its op
 * and arguments. Task t covers units [floor(U t / T), floor(U (t + 1) / T)).
 */
import { Worker } from "node:worker_threads";
import { UnmaskError } from "@unmask/clip";
import type { Arena } from "./arena.js";
import { GEMM_SCRATCH_FLOATS } from "./gemm-kernel.js";
import { gemmKernelModule } from "./kernel-module.js";
import { LAYERNORM_EPS } from "./layernorm.js";
import { workerTaskLoopSource } from "./task-loop.js";

const HEADER = 8;
const STEP_WORDS = 10;
/** Most steps in one job. */
export const MAX_STEPS = 6;
/** Most tasks per job: a few per thread, so a slow thread holds up little. */
const MAX_TASKS_PER_THREAD = 4;
/** Fewest rows a task takes (the wake-up of a worker costs more than a few short rows). */
const MIN_TASK_ROWS = 16;
const WORKER_TIMEOUT_MS = 120_000;
const EPS_BITS = new Int32Array(new Float32Array([LAYERNORM_EPS]).buffer)[0];

/** One step of a job; pointers are arena views (their byteOffset is used), widths in floats. */
export type Step =
  /** c[r, :n] += bias (matmul.ts's bias; ld: c's row stride in floats) */
  | { op: "addRows"; c: Float32Array; ld: number; bias: Float32Array; n: number }
  /** dst[r] += src[r], rows of `width` */
  | { op: "addInto"; dst: Float32Array; src: Float32Array; width: number }
  /** out[r] = LayerNorm(inp[r]) * weight + bias (statistics not kept) */
  | {
      op: "layernorm";
      out: Float32Array;
      inp: Float32Array;
      weight: Float32Array;
      bias: Float32Array;
      width: number;
    }
  /** out[r] = quick_gelu(inp[r]), rows of `width` */
  | { op: "quickGelu"; out: Float32Array; inp: Float32Array; width: number }
  /**
   * attention.ts attentionForward on whole sequences (units are sequences of `tokens` rows):
   * out [rows, width], probs [sequences, heads, tokens, tokens], qkv [rows, 3 width]
   */
  | {
      op: "attention";
      out: Float32Array;
      probs: Float32Array;
      qkv: Float32Array;
      tokens: number;
      width: number;
      heads: number;
      causal: boolean;
    }
  /**
   * Causal attention of sequences that all begin with the same `prefix` positions, given only
   * their other `tokens` rows (units: sequences of `tokens` rows): qkv [rows, 3 width] of those
   * rows, prefixQkv [prefix, 3 width] the shared rows' (bias added). Each sequence's prefix + tokens
   * rows are gathered into the thread's scratch and run as attention.ts does for the rows after
   * the prefix: out [rows, width], probs [sequences, heads, tokens, prefix + tokens]. The scratch
   * must hold stepScratchFloats(prefix + tokens, width).
   */
  | {
      op: "attentionPrefixed";
      out: Float32Array;
      probs: Float32Array;
      qkv: Float32Array;
      prefixQkv: Float32Array;
      prefix: number;
      tokens: number;
      width: number;
      heads: number;
    };

/** Floats of a thread's scratch for sequences of up to `tokens` positions of `width`. */
export function stepScratchFloats(tokens: number, width: number): number {
  return GEMM_SCRATCH_FLOATS + tokens * 3 * width;
}

const OP = {
  addRows: 1,
  addInto: 2,
  layernorm: 3,
  quickGelu: 4,
  attention: 5,
  attentionPrefixed: 6,
} as const;

/**
 * `makeRunner(kernels, memory, scratch)` returns `runTask(ctl, t)`, which runs the job's steps on
 * task t's range. Plain JavaScript: the workers evaluate it as text. The attention step is
 * attention.ts's attentionForward (gemm, softmaxRow) written on byte offsets.
 */
const STEP_SOURCE = `
function makeRunner(kernels, memory, scratch) {
  const bitsView = new Float32Array(1);
  const bitsInt = new Int32Array(bitsView.buffer);
  const floatBits = (x) => { bitsView[0] = x; return bitsInt[0]; };
  let heap = new Float32Array(memory.buffer);
  function softmaxRow(row, visible, n, scale) {
    const p = heap;
    let max = -Infinity;
    for (let j = 0; j < visible; j++) max = Math.max(max, p[row + j]);
    const vectorised = visible & ~3;
    if (vectorised) kernels.expShifted(row * 4, vectorised, floatBits(max), floatBits(scale));
    for (let j = vectorised; j < visible; j++) p[row + j] = Math.exp((p[row + j] - max) * scale);
    let sum = 0;
    for (let j = 0; j < visible; j++) sum += p[row + j];
    const inverse = 1 / sum;
    for (let j = 0; j < visible; j++) p[row + j] *= inverse;
    for (let j = visible; j < n; j++) p[row + j] = 0;
  }
  function attention(out, probs, qkv, b0, b1, N, width, heads, causal) {
    const dh = width / heads;
    const scale = 1 / Math.sqrt(dh);
    const ld = 3 * width;
    for (let b = b0; b < b1; b++) {
      const base = qkv + b * N * ld * 4;
      for (let h = 0; h < heads; h++) {
        const q = base + h * dh * 4;
        const k = q + width * 4;
        const v = q + 2 * width * 4;
        const p = probs + (b * heads + h) * N * N * 4;
        kernels.gemm(0, 1, N, N, dh, q, ld, k, ld, p, N, 0, scratch);
        for (let i = 0; i < N; i++) softmaxRow(p / 4 + i * N, causal ? i + 1 : N, N, scale);
        kernels.gemm(0, 0, N, dh, N, p, N, v, ld, out + (b * N * width + h * dh) * 4, width, 0, scratch);
      }
    }
  }
  function attentionPrefixed(out, probs, qkv, pre, P, S, b0, b1, width, heads) {
    const N = P + S;
    const dh = width / heads;
    const scale = 1 / Math.sqrt(dh);
    const ld = 3 * width;
    const kv = scratch + ${GEMM_SCRATCH_FLOATS} * 4;
    for (let b = b0; b < b1; b++) {
      heap.copyWithin(kv / 4, pre / 4, pre / 4 + P * ld);
      const own = qkv / 4 + b * S * ld;
      heap.copyWithin(kv / 4 + P * ld, own, own + S * ld);
      for (let h = 0; h < heads; h++) {
        const q = kv + (P * ld + h * dh) * 4;
        const k = kv + (width + h * dh) * 4;
        const v = kv + (2 * width + h * dh) * 4;
        const p = probs + (b * heads + h) * S * N * 4;
        kernels.gemm(0, 1, S, N, dh, q, ld, k, ld, p, N, 0, scratch);
        for (let i = 0; i < S; i++) softmaxRow(p / 4 + i * N, P + i + 1, N, scale);
        kernels.gemm(0, 0, S, dh, N, p, N, v, ld, out + (b * S * width + h * dh) * 4, width, 0, scratch);
      }
    }
  }
  return function runTask(ctl, t) {
    if (heap.buffer.byteLength !== memory.buffer.byteLength) heap = new Float32Array(memory.buffer);
    const tasks = ctl[3];
    const units = ctl[6];
    const unitRows = ctl[7];
    const u0 = Math.floor((units * t) / tasks);
    const u1 = Math.floor((units * (t + 1)) / tasks);
    if (u1 <= u0) return;
    const r0 = u0 * unitRows;
    const rows = (u1 - u0) * unitRows;
    for (let s = 0; s < ctl[5]; s++) {
      const a = ${HEADER} + s * ${STEP_WORDS};
      const w = (i) => ctl[a + i] >>> 0;
      switch (ctl[a]) {
        case ${OP.addRows}:
          kernels.addRows(w(1) + r0 * w(2) * 4, w(2) * 4, w(3), rows, w(4));
          break;
        case ${OP.addInto}:
          kernels.addInto(w(1) + r0 * w(3) * 4, w(2) + r0 * w(3) * 4, rows * w(3));
          break;
        case ${OP.layernorm}:
          kernels.layernormForward(w(1) + r0 * w(5) * 4, 0, 0, w(2) + r0 * w(5) * 4, w(3), w(4), rows, w(5), ${EPS_BITS});
          break;
        case ${OP.quickGelu}:
          kernels.quickGeluForward(w(1) + r0 * w(3) * 4, w(2) + r0 * w(3) * 4, rows * w(3));
          break;
        case ${OP.attention}:
          attention(w(1), w(2), w(3), u0, u1, w(4), w(5), w(6), w(7) !== 0);
          break;
        case ${OP.attentionPrefixed}:
          attentionPrefixed(w(1), w(2), w(3), w(4), w(5), w(6), u0, u1, w(7), w(8));
          break;
        default:
          throw new Error("step-threads: unknown step " + ctl[a]);
      }
    }
  };
}
`;

const WORKER_SOURCE = workerTaskLoopSource(
  `const { workerData } = require("node:worker_threads");
const { memory, module, control, scratch } = workerData;
const kernels = new WebAssembly.Instance(module, { env: { memory } }).exports;
${STEP_SOURCE}
const runTask = makeRunner(kernels, memory, scratch);
const ctl = new Int32Array(control);`,
  "runTask(ctl, t);",
);

type RunTask = (ctl: Int32Array, task: number) => void;

/** Steps over `threads` threads (the caller and threads - 1 workers) on one arena's memory. */
export class StepThreads {
  private readonly workers: Worker[] = [];
  private readonly control = new Int32Array(new SharedArrayBuffer((HEADER + MAX_STEPS * STEP_WORDS) * 4));
  private readonly runTask: RunTask;
  private sequence = 0;
  private closed = false;

  /**
   * `scratch(i)` is thread i's scratch in the arena (0 is the caller's): the attention's small
   * GEMMs pack into its first GEMM_SCRATCH_FLOATS floats, attentionPrefixed gathers rows after
   * them (stepScratchFloats). The owner keeps them, so that a new StepThreads on the same arena
   * allocates nothing.
   */
  constructor(
    arena: Arena,
    readonly threads: number,
    scratch: (thread: number) => Float32Array,
  ) {
    const module = gemmKernelModule();
    const makeRunner = new Function(`${STEP_SOURCE}; return makeRunner;`)() as (
      kernels: object,
      memory: object,
      scratch: number,
    ) => RunTask;
    this.runTask = makeRunner(arena.kernels, arena.memory, scratch(0).byteOffset);
    for (let w = 0; w < threads - 1; w++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: {
          memory: arena.memory,
          module,
          control: this.control.buffer,
          scratch: scratch(w + 1).byteOffset,
        },
      });
      worker.unref(); // a tower that is never closed must not keep the process alive
      this.workers.push(worker);
    }
  }

  /**
   * Runs `steps` in order on every range of `units` units of `unitRows` rows (attention steps:
   * units are sequences and unitRows their tokens). Every view must be in this arena.
   */
  run(steps: Step[], units: number, unitRows = 1): void {
    if (this.closed) throw new UnmaskError("CPU_WORKER_FAILED", "cpu engine: step threads are closed");
    if (steps.length > MAX_STEPS) throw new RangeError(`step-threads: at most ${MAX_STEPS} steps`);
    if (units === 0 || steps.length === 0) return;
    const ctl = this.control;
    steps.forEach((step, s) => {
      const words = stepWords(step);
      for (let i = 0; i < STEP_WORDS; i++) ctl[HEADER + s * STEP_WORDS + i] = (words[i] ?? 0) | 0;
    });
    const tasks = Math.max(
      1,
      Math.min(units, MAX_TASKS_PER_THREAD * this.threads, Math.floor((units * unitRows) / MIN_TASK_ROWS)),
    );
    ctl[5] = steps.length;
    ctl[6] = units;
    ctl[7] = unitRows;
    Atomics.store(ctl, 4, 0);
    Atomics.store(ctl, 3, tasks);
    Atomics.store(ctl, 2, 0);
    Atomics.store(ctl, 1, 0);
    if (this.workers.length > 0 && tasks > 1) {
      Atomics.store(ctl, 0, ++this.sequence);
      Atomics.notify(ctl, 0);
    }
    let failure: unknown;
    for (;;) {
      const t = Atomics.add(ctl, 1, 1);
      if (t >= tasks) break;
      try {
        this.runTask(ctl, t);
      } catch (error) {
        failure ??= error;
      }
      Atomics.add(ctl, 2, 1);
    }
    const started = Date.now();
    for (let done = Atomics.load(ctl, 2); done < tasks; done = Atomics.load(ctl, 2)) {
      Atomics.wait(ctl, 2, done, 1000);
      if (Date.now() - started > WORKER_TIMEOUT_MS)
        throw new UnmaskError(
          "CPU_WORKER_FAILED",
          `cpu engine: a step worker did not finish in ${WORKER_TIMEOUT_MS} ms`,
        );
    }
    if (failure !== undefined) throw failure;
    if (Atomics.load(ctl, 4) !== 0)
      throw new UnmaskError("CPU_WORKER_FAILED", "cpu engine: a step worker failed");
  }

  async close(): Promise<void> {
    this.closed = true;
    Atomics.store(this.control, 0, -1);
    Atomics.notify(this.control, 0);
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}

function stepWords(step: Step): number[] {
  switch (step.op) {
    case "addRows":
      return [OP.addRows, step.c.byteOffset, step.ld, step.bias.byteOffset, step.n];
    case "addInto":
      return [OP.addInto, step.dst.byteOffset, step.src.byteOffset, step.width];
    case "layernorm":
      return [
        OP.layernorm,
        step.out.byteOffset,
        step.inp.byteOffset,
        step.weight.byteOffset,
        step.bias.byteOffset,
        step.width,
      ];
    case "quickGelu":
      return [OP.quickGelu, step.out.byteOffset, step.inp.byteOffset, step.width];
    case "attention":
      return [
        OP.attention,
        step.out.byteOffset,
        step.probs.byteOffset,
        step.qkv.byteOffset,
        step.tokens,
        step.width,
        step.heads,
        step.causal ? 1 : 0,
      ];
    case "attentionPrefixed":
      return [
        OP.attentionPrefixed,
        step.out.byteOffset,
        step.probs.byteOffset,
        step.qkv.byteOffset,
        step.prefixQkv.byteOffset,
        step.prefix,
        step.tokens,
        step.width,
        step.heads,
      ];
  }
}
