import { describe, expect, it } from "vitest";
import type { Cublas, GemmCall, GemmChoice } from "./cublas.js";
import type { CublasLt } from "./cublas-lt.js";
import type { CudaDriver } from "./driver.js";
import { GemmTuner } from "./gemm-tuning.js";
import type { Kernels } from "./kernels.js";

/**
 * Stand-ins: every algorithm "writes" an output named by its bits ("same" or "other") and advances
 * a clock by its cost; the digest kernel reads the last output, events read the clock.
 */
function standIns(candidates: { bits: "same" | "other" | "refused"; ms: number }[], defaultMs = 1) {
  let clock = 0;
  let output = "";
  const events = new Map<number, number>();
  let nextEvent = 1;
  let digest = 0n;
  const walkLaunches: string[] = [];
  const copies: string[] = [];
  const cu = {
    alloc: () => 64,
    free: () => {},
    createEvent: () => nextEvent++,
    destroyEvent: () => {},
    record: (e: number) => events.set(e, clock),
    synchronize: () => {},
    elapsed: (a: number, b: number) => (events.get(b) ?? 0) - (events.get(a) ?? 0),
    fill32: () => {
      digest = 0n;
    },
    download: (d: BigUint64Array) => {
      d[0] = digest;
    },
  } as unknown as CudaDriver;
  const kernels = {
    dryRun: false,
    bitsDigest: () => {
      digest = output === "same" ? 11n : 22n;
    },
    copyRows: (src: number, _: number, dst: number) => copies.push(`${src}->${dst} before ${runs.length}`),
  } as unknown as Kernels;
  const runs: string[] = [];
  const blas = {
    choices: new Map<string, GemmChoice>(),
    interceptor: undefined as ((c: GemmCall) => void) | undefined,
    gemmEx: () => {
      output = "same";
      clock += defaultMs;
      runs.push("gemmEx");
    },
    gemm(c: GemmCall) {
      if (this.interceptor) this.interceptor(c);
      else walkLaunches.push("gemm ran during the walk");
    },
  };
  const algos = candidates.map((_, i) => Uint8Array.of(i));
  const lt = {
    plan: () => ({ op: 1, a: 2, b: 3, c: 4 }),
    algorithms: () => algos,
    matmul: (_plan: unknown, algo: Uint8Array) => {
      if (candidates[algo[0]].bits === "refused") throw new Error("CUBLAS_STATUS_NOT_SUPPORTED");
      output = candidates[algo[0]].bits;
      clock += candidates[algo[0]].ms;
      runs.push(`algo ${algo[0]}`);
    },
  } as unknown as CublasLt;
  const tuner = new GemmTuner(cu, blas as unknown as Cublas, lt, kernels, 0);
  return { tuner, blas, kernels, algos, walkLaunches, copies, runs };
}

const call = (M: number, beta = 0, type?: "f32"): GemmCall => ({
  M,
  N: 64,
  K: 32,
  A: { ptr: 1000, ld: 32 },
  B: { ptr: 2000, ld: 64 },
  C: { ptr: 3000, ld: 64, type },
  beta,
});

describe("GemmTuner", () => {
  it("takes the fastest candidate with cublasGemmEx's bits, never a faster one with other bits", () => {
    const s = standIns([
      { bits: "other", ms: 0.5 },
      { bits: "same", ms: 0.9 },
      { bits: "same", ms: 0.8 },
    ]);
    s.tuner.tune(() => s.blas.gemm(call(128)));
    const [result] = s.tuner.results;
    expect(result).toMatchObject({ candidates: 3, identical: 2, defaultMs: 1, chosenMs: 0.8, chosen: 2 });
    expect([...s.blas.choices.values()].map((c) => c.algo)).toEqual([s.algos[2]]);
  });

  it("passes over a candidate that cuBLASLt refuses to run", () => {
    const s = standIns([
      { bits: "refused", ms: 0.1 },
      { bits: "same", ms: 0.7 },
    ]);
    s.tuner.tune(() => s.blas.gemm(call(128)));
    expect(s.tuner.results[0]).toMatchObject({ candidates: 2, identical: 1, chosen: 1, chosenMs: 0.7 });
  });

  it("keeps cublasGemmEx when no identical candidate is at least 2% faster", () => {
    const s = standIns([
      { bits: "same", ms: 0.99 },
      { bits: "other", ms: 0.1 },
    ]);
    s.tuner.tune(() => s.blas.gemm(call(128)));
    expect(s.tuner.results[0]).toMatchObject({ identical: 1, chosen: -1, chosenMs: 1 });
    expect(s.blas.choices.size).toBe(0);
  });

  it("tunes each shape once, skips calls accumulating into a 16-bit C, and walks the step with kernels off", () => {
    const s = standIns([{ bits: "same", ms: 0.5 }]);
    let dryDuringWalk = false;
    const walk = () => {
      dryDuringWalk = s.kernels.dryRun;
      s.blas.gemm(call(128));
      s.blas.gemm(call(128)); // same shape, other layer
      s.blas.gemm(call(256, 1)); // accumulates into a 16-bit C: running it again would change C
    };
    s.tuner.tune(walk);
    s.tuner.tune(walk);
    expect(dryDuringWalk).toBe(true);
    expect(s.kernels.dryRun).toBe(false);
    expect(s.blas.interceptor).toBeUndefined();
    expect(s.walkLaunches).toEqual([]);
    expect(s.tuner.results.map((r) => r.shape)).toEqual(["128x64x32 NN fp16"]);
  });

  it("measures a bias-epilogue call against cuBLASLt's first choice, the one that runs untuned", () => {
    const s = standIns([
      { bits: "other", ms: 0.9 },
      { bits: "other", ms: 0.8 },
      { bits: "same", ms: 0.5 },
    ]);
    s.tuner.tune(() => s.blas.gemm({ ...call(512), bias: 4000 }));
    // the reference is candidate 0 ("other" bits): candidate 1 matches it, candidate 2 does not
    expect(s.tuner.results[0]).toMatchObject({
      shape: "512x64x32 NN fp16 +bias",
      candidates: 3,
      identical: 1,
      defaultMs: 0.9,
      chosen: 1,
    });
    expect(s.runs).not.toContain("gemmEx");
  });

  it("tunes a call accumulating into fp32 on a saved copy of C, put back before every run and at the end", () => {
    const s = standIns([{ bits: "same", ms: 0.5 }]);
    s.tuner.tune(() => s.blas.gemm({ ...call(128, 1, "f32"), bias: 4000 }));
    expect(s.tuner.results[0]).toMatchObject({ shape: "128x64x32 NN f32 +C +bias", chosen: -1 });
    // saved once (C at 3000, the copy at 64), then put back before the reference's digest run
    // and after the last run, before the reference runs once more as the step would
    const runsBefore = s.runs.length - 1;
    expect(s.copies).toEqual(["3000->64 before 0", "64->3000 before 0", `64->3000 before ${runsBefore}`]);
  });
});
