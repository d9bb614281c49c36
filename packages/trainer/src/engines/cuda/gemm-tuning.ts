/**
 * GEMM algorithm tuning without changing a bit. cublasGemmEx runs cuBLAS's first heuristic choice
 * for a shape; cuBLASLt offers several more. For each GEMM shape of a step, on the buffers the
 * previous (eager) step left behind, the tuner runs the reference (cublasGemmEx, or for a call
 * with a bias epilogue cuBLASLt's first heuristic choice, which is what runs untuned) and each
 * cuBLASLt candidate, compares their outputs by a 64-bit digest (kernels/digest.cu) and times them
 * (CUDA events). A candidate is kept only when its output has exactly the reference's bits (the
 * same reduction order: split-K variants differ and are never taken) and it is at least MIN_GAIN
 * faster, so tuning changes speed and never results, whichever way the timings fall.
 *
 * A GEMM writes only its C. Every C of a step is either scratch that the next step recomputes, so
 * running it again on the previous step's data is harmless, or, for calls that accumulate (beta =
 * 1), the fp32 residual stream: the tuner saves it first and puts it back before every run and
 * after the last. Accumulating calls into a 16-bit C are not tuned.
 */
import { type Cublas, type GemmCall, gemmKey, gemmLabel } from "./cublas.js";
import type { CublasLt } from "./cublas-lt.js";
import type { CudaDriver } from "./driver.js";
import type { Kernels } from "./kernels.js";

/** Candidates asked of cuBLASLt's heuristics per shape. */
const CANDIDATES = 16;
/** Timed runs per algorithm (after one that also yields the digest). */
const REPEATS = 5;
/** A candidate replaces cublasGemmEx only when this much faster. */
const MIN_GAIN = 0.02;

/** One tuned shape, for benches and reports. */
export interface GemmTuning {
  shape: string;
  /** cuBLASLt candidates offered, and how many (the reference apart) gave the reference's bits. */
  candidates: number;
  identical: number;
  defaultMs: number;
  /** The time of what runs from now on (defaultMs when no candidate was taken). */
  chosenMs: number;
  /** Heuristic rank of the algorithm taken, -1 for the reference. */
  chosen: number;
}

export class GemmTuner {
  readonly results: GemmTuning[] = [];
  private readonly tried = new Set<string>();

  constructor(
    private readonly cu: CudaDriver,
    private readonly blas: Cublas,
    private readonly lt: CublasLt,
    private readonly kernels: Kernels,
    private readonly stream: number,
  ) {}

  /** Tunes every GEMM shape `walk` issues that was not tuned before; `walk` launches no kernels. */
  tune(walk: () => void): void {
    const calls: GemmCall[] = [];
    this.blas.interceptor = (c) => {
      const key = gemmKey(c);
      if (this.tried.has(key) || (accumulates(c) && c.C.type !== "f32")) return;
      this.tried.add(key);
      calls.push({ ...c, A: { ...c.A }, B: { ...c.B }, C: { ...c.C } });
    };
    this.kernels.dryRun = true;
    try {
      walk();
    } finally {
      this.blas.interceptor = undefined;
      this.kernels.dryRun = false;
    }
    if (calls.length === 0) return;
    const digest = this.cu.alloc(8);
    const savedWords = Math.max(0, ...calls.filter(accumulates).map(outputWords));
    const saved = savedWords > 0 ? this.cu.alloc(savedWords * 4) : 0;
    const [e0, e1] = [this.cu.createEvent(), this.cu.createEvent()];
    try {
      for (const c of calls) this.tuneOne(c, digest, e0, e1, saved);
    } finally {
      this.cu.synchronize(this.stream);
      this.cu.destroyEvent(e0);
      this.cu.destroyEvent(e1);
      this.cu.free(digest);
      if (saved) this.cu.free(saved);
    }
  }

  private tuneOne(c: GemmCall, digest: number, e0: number, e1: number, saved: number): void {
    // an accumulating call's C (fp32 rows) is saved once and put back before every digest run
    const copyC = (src: number, dst: number) => this.kernels.copyRows(src, c.C.ld, dst, c.C.ld, c.M, c.N);
    const restore = () => {
      if (accumulates(c)) copyC(saved, c.C.ptr);
    };
    const outputDigest = (run: () => void): bigint => {
      restore();
      run();
      this.cu.fill32(digest, 0, 2, this.stream);
      this.kernels.bitsDigest(c.C.ptr, outputWords(c), digest);
      this.cu.synchronize(this.stream);
      const d = new BigUint64Array(1);
      this.cu.download(d, digest);
      return d[0];
    };
    const time = (run: () => void): number => {
      this.cu.record(e0, this.stream);
      for (let i = 0; i < REPEATS; i++) run();
      this.cu.record(e1, this.stream);
      this.cu.synchronize(this.stream);
      return this.cu.elapsed(e0, e1) / REPEATS;
    };
    const plan = this.lt.plan(c);
    const algos = this.lt.algorithms(plan, CANDIDATES);
    const epilogue = c.bias !== undefined;
    if (epilogue && algos.length === 0) return; // the model asked Cublas.supportsEpilogue first
    if (accumulates(c)) copyC(c.C.ptr, saved);
    const runDefault = epilogue ? () => this.lt.matmul(plan, algos[0], c) : () => this.blas.gemmEx(c);
    const reference = outputDigest(runDefault);
    const defaultMs = time(runDefault);
    let best = { ms: defaultMs, rank: -1 };
    let identical = 0;
    algos.forEach((algo, rank) => {
      if (epilogue && rank === 0) return; // the reference itself
      const run = () => this.lt.matmul(plan, algo, c);
      try {
        if (outputDigest(run) !== reference) return;
      } catch {
        return; // a candidate cuBLASLt refuses at run time is simply not taken
      }
      identical++;
      const ms = time(run);
      if (ms < best.ms) best = { ms, rank };
    });
    const taken = best.rank >= 0 && best.ms <= defaultMs * (1 - MIN_GAIN);
    if (taken) this.blas.choices.set(gemmKey(c), { plan, algo: algos[best.rank] });
    // the buffers hold the last candidate's output: leave them as the step would
    restore();
    runDefault();
    this.results.push({
      shape: gemmLabel(c, this.blas.precision),
      candidates: algos.length,
      identical,
      defaultMs: +defaultMs.toFixed(4),
      chosenMs: +(taken ? best.ms : defaultMs).toFixed(4),
      chosen: taken ? best.rank : -1,
    });
  }
}

function accumulates(c: GemmCall): boolean {
  return (c.beta ?? 0) !== 0;
}

/** The 32-bit words spanned by c's output (rows apart by ld, batches by stride). */
function outputWords(c: GemmCall): number {
  const elements = ((c.batch ?? 1) - 1) * (c.C.stride ?? 0) + (c.M - 1) * c.C.ld + c.N;
  return Math.floor((elements * (c.C.type === "f32" ? 4 : 2)) / 4);
}
