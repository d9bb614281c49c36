/**
 * The tower's launch sequence without a GPU: the driver, the kernels and cuBLAS are stand-ins that
 * record what the step would launch, in order, so the tests see where the gradient reducer's
 * tensorReady and wait fall among the launches (several GPUs), and which adds move into GEMM
 * epilogues. What it cannot see: that the
 * launches compute the right thing (cuda-engine.gpu.test.ts) or that NCCL reduces on a device.
 */
import { f32ToBf16, f32ToF16 } from "@unmask/clip";
import { describe, expect, it } from "vitest";
import { withEnv } from "../../../bench/device/with-env.js";
import { backwardOrder } from "../../distributed/buckets.js";
import {
  type GradientReducer,
  identityReducer,
  NcclGradientReducer,
  type ReducerStreams,
} from "../../distributed/gradient-reducer.js";
import { DEFAULT_HYPER, type EngineModel, type Precision } from "../../engine.js";
import { randomVitModel } from "../cpu/random-model.js";
import type { Cublas, GemmCall } from "./cublas.js";
import type { CudaDriver } from "./driver.js";
import { CudaEngine, reducerContext } from "./engine.js";
import type { GemmTuner } from "./gemm-tuning.js";
import { type Kernels, MLP_K_STEP } from "./kernels.js";
import { epilogueRequest, TowerModel } from "./model.js";

type Entry =
  | { kind: "gemm"; C: number; K: number; batch: number }
  | { kind: "kernel"; name: string }
  | { kind: "driver"; name: string }
  | { kind: "ready"; tensor: number; stream: number }
  | { kind: "wait"; stream: number }
  | { kind: "dispose" };

const STREAM = 7;
/** Where the stand-in driver "allocates" the arena. */
const BASE = 2 ** 32;
const MAX_BATCH = 2;

/** An object whose every method records its name (and does nothing else). */
function recording(log: Entry[], kind: "kernel" | "driver", special: Record<string, unknown> = {}) {
  return new Proxy(
    {},
    {
      get(_, name) {
        if (typeof name !== "string" || name === "then") return undefined;
        if (name in special) return special[name];
        return () => log.push({ kind, name });
      },
    },
  );
}

function standIns(log: Entry[]) {
  const cu = recording(log, "driver", {
    alloc: () => BASE,
    endCapture: () => ({ exec: 1, graph: 2 }),
  }) as unknown as CudaDriver;
  const kernels = recording(log, "kernel") as unknown as Kernels;
  const blas = {
    gemm: (c: GemmCall) => log.push({ kind: "gemm", C: c.C.ptr, K: c.K, batch: c.batch ?? 1 }),
    dispose: () => {},
  } as unknown as Cublas;
  return { cu, kernels, blas };
}

function tinyModel(maskedTensors?: string[]): EngineModel {
  return randomVitModel({
    resolution: 16,
    patch: 8,
    width: 64,
    layers: 2,
    embed: 8,
    classes: 3,
    ...(maskedTensors ? { maskedTensors } : {}),
  });
}

function tower(model: EngineModel, log: Entry[]) {
  const { cu, kernels, blas } = standIns(log);
  const t = new TowerModel(cu, kernels, blas, STREAM, model, MAX_BATCH, DEFAULT_HYPER, 1);
  return { tower: t, cu, kernels, blas };
}

/** A reducer that records the engine's calls in the launch log. */
function recordingReducer(log: Entry[]): GradientReducer {
  return {
    worldSize: 2,
    plan: { buckets: [], totalElements: 0, slots: [], bucketOf: [] },
    tensorReady: (tensor, stream) => log.push({ kind: "ready", tensor, stream }),
    wait: (stream) => log.push({ kind: "wait", stream }),
    dispose: () => log.push({ kind: "dispose" }),
  };
}

/** Whether a GEMM's output starts inside masked tensor `index`'s gradient buffer. */
function writesGrads(t: TowerModel, entry: Entry, index: number): boolean {
  const g = t.masked[index].grads;
  return entry.kind === "gemm" && entry.C >= g.ptr && entry.C < g.ptr + g.bytes;
}

const launches = (log: Entry[]) => log.filter((e) => e.kind !== "ready" && e.kind !== "wait");

describe("TowerModel with a gradient reducer", () => {
  it("hands each tensor over right after the GEMM that completes its gradient, and waits before the update", () => {
    const model = tinyModel();
    const log: Entry[] = [];
    const { tower: t } = tower(model, log);
    t.reducer = recordingReducer(log);
    log.length = 0;
    t.encodeStep(MAX_BATCH, null);

    const ready = log.flatMap((e, i) => (e.kind === "ready" ? [{ ...e, at: i }] : []));
    const lastInProj = model.maskedTensors.indexOf("visual.transformer.resblocks.1.attn.in_proj_weight");
    // every masked tensor once, in the order the bucket plan expects (last block first, conv1 last)
    expect(ready.map((r) => r.tensor)).toEqual(backwardOrder(model.maskedTensors));
    expect(model.maskedTensors.length).toBe(5);
    for (const r of ready) {
      expect(r.stream).toBe(STREAM);
      // the launch just before is the GEMM writing this gradient; nothing writes it afterwards
      expect(writesGrads(t, log[r.at - 1], r.tensor)).toBe(true);
      expect(log.slice(r.at + 1).some((e) => writesGrads(t, e, r.tensor))).toBe(false);
      // one GEMM batched over both signals writes each gradient (in_proj, out_proj, conv1), but
      // the last block's in_proj: its query rows (class rows only) and its key and value rows
      const writers = log.slice(0, r.at).filter((e) => writesGrads(t, e, r.tensor)).length;
      expect(writers).toBe(r.tensor === lastInProj ? 2 : 1);
    }

    const waits = log.flatMap((e, i) => (e.kind === "wait" ? [i] : []));
    expect(waits).toHaveLength(1);
    const [wait] = waits;
    expect(log[wait]).toEqual({ kind: "wait", stream: STREAM });
    const kernelAt = (name: string) =>
      log.flatMap((e, i) => (e.kind === "kernel" && e.name === name ? [i] : []));
    // the score norms (scores only) may run before it; every update kernel runs after it
    expect(Math.max(...kernelAt("maskSumsq"), ...kernelAt("maskNorms"))).toBeLessThan(wait);
    expect(kernelAt("maskUpdate")).toHaveLength(5);
    expect(Math.min(...kernelAt("maskUpdate"))).toBeGreaterThan(wait);
    expect(Math.max(...ready.map((r) => r.at))).toBeLessThan(wait);
  });

  it("launches exactly the same sequence with and without a reducer (the single-GPU path)", () => {
    const model = tinyModel();
    const plain: Entry[] = [];
    const a = tower(model, plain).tower;
    plain.length = 0;
    a.encodeStep(MAX_BATCH, null);
    const withReducer: Entry[] = [];
    const b = tower(model, withReducer).tower;
    b.reducer = recordingReducer(withReducer);
    withReducer.length = 0;
    b.encodeStep(MAX_BATCH, null);
    expect(plain.some((e) => e.kind === "ready" || e.kind === "wait")).toBe(false);
    expect(launches(withReducer)).toEqual(plain);
  });

  it("hands over block 0's in_proj when it is the only masked tensor (the backward stops early there)", () => {
    const name = "visual.transformer.resblocks.0.attn.in_proj_weight";
    const log: Entry[] = [];
    const { tower: t } = tower(tinyModel([name]), log);
    const reducer = identityReducer([{ name, numel: 3 * 64 * 64 }]);
    t.reducer = reducer;
    for (let step = 0; step < 2; step++) t.encodeStep(MAX_BATCH, null); // wait() throws if one is missing
    expect(reducer.reducedBuckets).toEqual([0, 0]);
  });

  it("drives the NCCL reducer: each bucket's all-reduce starts when its last tensor is ready", () => {
    const model = tinyModel();
    const log: Entry[] = [];
    const { tower: t } = tower(model, log);
    const calls: string[] = [];
    let nextHandle = 100;
    const streams: ReducerStreams = {
      createStream: () => nextHandle++,
      createEvent: () => nextHandle++,
      join: (waiter, signaller) => calls.push(`join ${waiter}<-${signaller}`),
      destroyEvent: () => {},
      destroyStream: () => {},
    };
    const context = reducerContext(t, { koffi: undefined as never, driver: undefined as never });
    const reduced: number[] = [];
    const reducer = new NcclGradientReducer({
      comm: {
        worldSize: 2,
        allReduce: (args) => {
          reduced.push(args.send);
          calls.push(`allReduce ${args.count} on ${args.stream}`);
        },
        group: (enqueue) => enqueue(),
      },
      context,
      streams,
      // in_proj (3 x 64 x 64 x 2 signals x 4 bytes = 96 KiB) and out_proj (32 KiB) of a block together
      bucketBytes: 128 * 1024,
    });
    t.reducer = reducer;
    for (let step = 0; step < 2; step++) {
      calls.length = 0;
      reduced.length = 0;
      t.encodeStep(MAX_BATCH, null);
      // buckets: [1.out, 1.in], [0.out, 0.in], [conv1]; the compute stream joins the comm stream once
      const comm = 100;
      expect(calls).toEqual([
        `join ${comm}<-${STREAM}`,
        `allReduce ${2 * 64 * 64} on ${comm}`,
        `allReduce ${2 * 3 * 64 * 64} on ${comm}`,
        `join ${comm}<-${STREAM}`,
        `allReduce ${2 * 64 * 64} on ${comm}`,
        `allReduce ${2 * 3 * 64 * 64} on ${comm}`,
        `join ${comm}<-${STREAM}`,
        `allReduce ${2 * 64 * 3 * 8 * 8} on ${comm}`,
        `join ${STREAM}<-${comm}`,
      ]);
      expect(reduced).toEqual([4, 3, 2, 1, 0].map((i) => t.masked[i].grads.ptr));
    }
  });
});

describe("reducerContext", () => {
  it("lists the masked tensors and their gradient buffers in EngineModel.maskedTensors order", () => {
    const model = tinyModel();
    const { tower: t } = tower(model, []);
    const cuda = { koffi: undefined as never, driver: undefined as never };
    const context = reducerContext(t, cuda);
    expect(context.tensors.map((x) => x.name)).toEqual(model.maskedTensors);
    expect(context.tensors.map((x) => x.numel)).toEqual(
      model.maskedTensors.map((n) => model.weights.get(n)?.data.length),
    );
    expect(context.gradientPointers).toEqual(t.masked.map((m) => m.grads.ptr));
    expect(t.masked.every((m) => m.grads.bytes === 2 * m.numel * 4)).toBe(true);
    expect(context.cuda).toBe(cuda);
  });
});

describe("CudaEngine steps", () => {
  const batch = { labels: Int32Array.from([0, 2]), pixels: new Float32Array(MAX_BATCH * 3 * 16 * 16) };
  const options = { maxBatch: MAX_BATCH, hyper: DEFAULT_HYPER, seed: 1 };

  function engine(withReducer: boolean, tuner?: GemmTuner) {
    const model = tinyModel();
    const log: Entry[] = [];
    const { tower: t, cu, kernels, blas } = tower(model, log);
    if (withReducer) t.reducer = recordingReducer(log);
    const e = new CudaEngine(cu, STREAM, kernels, blas, t, model, options, tuner);
    log.length = 0;
    return { e, log };
  }
  const count = (log: Entry[], pick: (e: Entry) => boolean) => log.filter(pick).length;
  const driverCalls = (log: Entry[], name: string) =>
    count(log, (e) => e.kind === "driver" && e.name === name);

  it("on one GPU: captures the step into a graph once and replays it", async () => {
    const { e, log } = engine(false);
    for (let step = 0; step < 3; step++) await e.step(batch, { lr: 1e-3, step });
    expect(driverCalls(log, "beginCapture")).toBe(1);
    expect(driverCalls(log, "launchGraph")).toBe(3);
    expect(count(log, (x) => x.kind === "kernel" && x.name === "maskUpdate")).toBe(5); // encoded once
  });

  it("with GEMM tuning: runs a batch size's first step eagerly, tunes its GEMMs once, then captures", async () => {
    let tunes = 0;
    const tuner = { tune: () => tunes++, results: [] } as unknown as GemmTuner;
    const { e, log } = engine(false, tuner);
    for (let step = 0; step < 4; step++) await e.step(batch, { lr: 1e-3, step });
    expect(tunes).toBe(1);
    expect(driverCalls(log, "beginCapture")).toBe(1);
    expect(driverCalls(log, "launchGraph")).toBe(3);
    // encoded twice: the eager first step, the captured graph
    expect(count(log, (x) => x.kind === "kernel" && x.name === "maskUpdate")).toBe(2 * 5);
  });

  it("as one rank of several: issues every step eagerly, with its reducer calls, and disposes the reducer", async () => {
    const { e, log } = engine(true);
    for (let step = 0; step < 3; step++) await e.step(batch, { lr: 1e-3, step });
    expect(driverCalls(log, "beginCapture")).toBe(0);
    expect(driverCalls(log, "launchGraph")).toBe(0);
    expect(count(log, (x) => x.kind === "wait")).toBe(3);
    expect(count(log, (x) => x.kind === "ready")).toBe(3 * 5);
    expect(count(log, (x) => x.kind === "kernel" && x.name === "maskUpdate")).toBe(3 * 5);
    expect(() => e.profileStep(MAX_BATCH)).toThrow(/single GPU/);
    await e.dispose();
    await e.dispose();
    expect(count(log, (x) => x.kind === "dispose")).toBe(1);
  });
});

type Call = { name: string; args: unknown[] };

/**
 * Every GEMM and kernel launch of one step of the tiny tower, with its arguments; `driver` adds
 * stand-in driver members (the GPU's compute capability, say), `choose` runs before the step.
 */
function recordStep(
  driver: Record<string, unknown> = {},
  choose?: (t: TowerModel) => void,
  precision?: Precision,
) {
  const calls: Call[] = [];
  const kernels = new Proxy(
    {},
    {
      get: (_, name) =>
        typeof name === "string" && name !== "then"
          ? (...args: unknown[]) => calls.push({ name, args })
          : undefined,
    },
  ) as unknown as Kernels;
  const blas = { gemm: (c: GemmCall) => calls.push({ name: "gemm", args: [c] }) } as unknown as Cublas;
  const cu = recording([], "driver", { alloc: () => BASE, ...driver }) as unknown as CudaDriver;
  const t = new TowerModel(cu, kernels, blas, STREAM, tinyModel(), MAX_BATCH, DEFAULT_HYPER, 1, precision);
  choose?.(t);
  calls.length = 0;
  t.encodeStep(MAX_BATCH, null);
  const gemms = calls.filter((c) => c.name === "gemm").map((c) => c.args[0] as GemmCall);
  const named = (name: string) => calls.filter((c) => c.name === name).map((c) => c.args);
  return { t, calls, gemms, named };
}

describe("TowerModel GEMM epilogues", () => {
  const stepCalls = (choose?: (t: TowerModel) => void) => recordStep({}, choose);
  /** in_proj's bias of blocks 0 and 1: what the attention kernels get without epilogues. */
  const plainBiases = () => {
    const { named } = stepCalls();
    return [named("attnFwd")[0][1], named("attnClsFwd")[0][1]] as number[];
  };

  it("moves in_proj's bias into its GEMM and the branch outputs into the residual stream", () => {
    const { t, gemms, named } = stepCalls((t) => t.chooseEpilogues(() => true, epilogueRequest(undefined)));
    expect(t.epilogues).toEqual({ qkvBias: true, attnResidual: true, mlpResidual: true });
    const D = t.dims.D;
    const [bias0, bias1] = plainBiases();
    // in_proj: block 0 (N = 3D) and block 1 (keys and values, then the class rows' queries), both forwards
    const biased = gemms.filter((g) => g.bias !== undefined && g.C.type !== "f32");
    // (their bf16 copies: the bias regions taken right after each fp32 one, 256-byte aligned)
    const copy = (fp32: number) => fp32 + Math.ceil((3 * D * 4) / 256) * 256;
    expect(biased.map((g) => [g.N, g.bias, g.biasType])).toEqual(
      [0, 1].flatMap(() => [
        [3 * D, copy(bias0), "lowp"],
        [2 * D, copy(bias1) + 2 * D, "lowp"],
        [D, copy(bias1), "lowp"],
      ]),
    );
    // the attention kernels add no bias, forward or backward
    for (const name of ["attnFwd", "attnClsFwd"]) for (const args of named(name)) expect(args[1]).toBe(0);
    for (const name of ["attnBwd", "attnClsBwd"])
      for (const [a] of named(name)) expect((a as { bias: number }).bias).toBe(0);
    // out_proj and c_proj accumulate into each forward's fp32 stream (the last block: its class rows)
    const accumulating = gemms.filter((g) => g.beta === 1 && g.C.type === "f32");
    // out_proj and c_proj of blocks 0 and 1, teacher then student
    expect(accumulating.map((g) => g.C.ptr)).toEqual(
      ["residT", "residT", "residCT", "residCT", "residS", "residS", "residCS", "residCS"].map((n) =>
        t.ptr(n),
      ),
    );
    expect(accumulating.every((g) => g.bias !== undefined)).toBe(true);
    // so residual_ln_fwd adds nothing, and the last one (a bare residual add) is gone
    const lnCalls = named("residualLnFwd").map(([a]) => a as { y: number; bias: number });
    expect(lnCalls.every((a) => a.y === 0 && a.bias === 0)).toBe(true);
    expect(lnCalls).toHaveLength(2 * 4);
  });

  it("keeps the kernels' adds where cuBLASLt offers no epilogue, launching what it launched before", () => {
    const plain = stepCalls();
    const refused = stepCalls((t) => t.chooseEpilogues(() => false, epilogueRequest(undefined)));
    expect(refused.t.epilogues).toEqual({ qkvBias: false, attnResidual: false, mlpResidual: false });
    expect(refused.gemms.some((g) => g.bias !== undefined)).toBe(false);
    expect(JSON.stringify(refused.calls)).toBe(JSON.stringify(plain.calls));
    const lnCalls = plain.named("residualLnFwd").map(([a]) => a as { y: number });
    expect(lnCalls.filter((a) => a.y !== 0)).toHaveLength(2 * 4); // two branches a block, two forwards
    expect(plain.named("attnFwd")[0][1]).not.toBe(0);
  });

  it("reads UNMASK_GEMM_EPILOGUES", () => {
    const all = { qkvBias: true, attnResidual: true, mlpResidual: true };
    expect(epilogueRequest(undefined)).toEqual(all);
    expect(epilogueRequest("qkv,attn,mlp")).toEqual(all);
    expect(epilogueRequest("none")).toEqual({ qkvBias: false, attnResidual: false, mlpResidual: false });
    expect(epilogueRequest("qkv,mlp")).toEqual({ qkvBias: true, attnResidual: false, mlpResidual: true });
  });

  it("runs the MLP's residual add in its epilogue and the attention's in residual_ln_fwd when asked", () => {
    const { t, gemms, named } = stepCalls((t) => t.chooseEpilogues(() => true, epilogueRequest("mlp")));
    const accumulating = gemms.filter((g) => g.beta === 1 && g.C.type === "f32");
    expect(accumulating.map((g) => g.K)).toEqual(Array(4).fill(4 * t.dims.D)); // c_proj alone, 2 blocks x 2 forwards
    const lnCalls = named("residualLnFwd").map(([a]) => a as { y: number });
    // per forward: LN1 of block 0, then after each out_proj (with y) and after block 0's c_proj
    expect(lnCalls.map((a) => a.y !== 0)).toEqual([false, true, false, true, false, true, false, true]);
  });
});

describe("TowerModel fused MLP GEMMs (Hopper)", () => {
  /** One step on a Hopper stand-in with UNMASK_MLP_GEMM as given, and the tensor maps it encoded. */
  function stepCalls(mlpGemm: "cublas" | "forward" | undefined) {
    const maps: number[][] = [];
    const hopper = {
      computeCapability: 90,
      canEncodeTensorMaps: true,
      encodeTensorMap: (...args: number[]) => {
        maps.push(args);
        return new Uint8Array(128);
      },
    };
    return { ...withEnv({ UNMASK_MLP_GEMM: mlpGemm }, () => recordStep(hopper)), maps };
  }
  const shape = (c: Call) => {
    const g = c.args[0] as GemmCall;
    return c.name === "gemm" ? `gemm ${g.M}x${g.N}x${g.K}` : c.name;
  };
  /** [rows, cols, ld, box rows, box cols: the K step] of each encoded map (the address dropped). */
  const mapShapes = (maps: number[][]) =>
    maps.map(([, rows, cols, ld, boxRows, boxCols]) => [rows, cols, ld, boxRows, boxCols]);
  type Up = Parameters<Kernels["mlpGemmGelu"]>[0];
  type Down = Parameters<Kernels["mlpGemmDgelu"]>[0];

  it("keeps cuBLAS and the activation kernels when asked (UNMASK_MLP_GEMM=cublas)", () => {
    const { t, calls } = stepCalls("cublas");
    expect(t.fusedMlp).toBe(false);
    expect(t.fusedMlpBackward).toBe(false);
    expect(calls.some((c) => c.name.startsWith("mlpGemm"))).toBe(false);
    expect(calls.filter((c) => c.name === "biasGeluFwd")).toHaveLength(4);
    expect(calls.filter((c) => c.name === "geluBwd")).toHaveLength(2);
  });

  it("runs c_fc with QuickGELU in its epilogue, and gelu_bwd on the x it keeps with a zero bias (forward)", () => {
    const plain = stepCalls("cublas");
    const fused = stepCalls("forward");
    const { t } = fused;
    expect(t.fusedMlp).toBe(true);
    expect(t.fusedMlpBackward).toBe(false);
    const { B, N, D, F, L } = t.dims;
    const R = B * N;
    // what the fused c_fc replaces: c_fc's GEMM (the forwards' only GEMMs of N = F, K = D) + bias_gelu_fwd
    const isForwardGemm = (c: Call) => {
      const g = c.args[0] as GemmCall;
      return c.name === "gemm" && g.N === F && g.K === D && g.transB === true;
    };
    const replaced = (c: Call) => c.name === "biasGeluFwd" || isForwardGemm(c);
    const others = (calls: Call[]) =>
      calls.filter((c) => !replaced(c) && c.name !== "mlpGemmGelu").map(shape);
    expect(others(fused.calls)).toEqual(others(plain.calls));
    expect(plain.calls.filter(replaced)).toHaveLength(2 * 2 * L); // GEMM + kernel, 2 forwards
    expect(fused.calls.filter(replaced)).toHaveLength(0);

    const up = fused.calls.filter((c) => c.name === "mlpGemmGelu").map((c) => c.args[0] as Up);
    // teacher then student, block 0 on every row, the last block on the class rows
    expect(up.map((g) => [g.M, g.N, g.K])).toEqual([
      [R, F, D],
      [B, F, D],
      [R, F, D],
      [B, F, D],
    ]);
    expect(up.every((g) => g.mapA === t.ptr("h.map") && g.out === t.ptr("g"))).toBe(true);
    expect(up.map((g) => g.xout === 0)).toEqual([true, true, false, false]); // the student keeps x
    expect(new Set(up.map((g) => g.mapB)).size).toBe(L); // each block's c_fc weight

    // the backward reads the student's x (last block first) with the zero bias, not c_fc's
    const geluBwd = fused.named("geluBwd");
    expect(geluBwd.map((args) => args[1])).toEqual(
      up
        .slice(2)
        .map((g) => g.xout)
        .reverse(),
    );
    expect(geluBwd.every((args) => args[2] === t.ptr("zeroBias"))).toBe(true);
    expect(new Set(plain.named("geluBwd").map((args) => args[2])).size).toBe(L); // each block's c_fc bias

    // tensor maps: per block c_fc's weight, then LN2's output h
    expect(mapShapes(fused.maps)).toEqual([
      ...Array(L).fill([F, D, D, 128, MLP_K_STEP]),
      [R, D, D, 128, MLP_K_STEP],
    ]);
  });

  it("by default also runs the backward's dg GEMM with QuickGELU' in its epilogue, reading the kept x by TMA", () => {
    const forward = stepCalls("forward");
    const fused = stepCalls(undefined);
    const { t } = fused;
    expect(t.fusedMlpBackward).toBe(true);
    const { B, N, D, F, L } = t.dims;
    const R = B * N;
    // what the fused dg GEMM replaces: the backward's GEMMs of N = F, K = D (dres Wproj) + gelu_bwd
    const isDgGemm = (c: Call) => {
      const g = c.args[0] as GemmCall;
      return c.name === "gemm" && g.N === F && g.K === D && g.transB !== true;
    };
    const replaced = (c: Call) => c.name === "geluBwd" || isDgGemm(c);
    const others = (calls: Call[]) =>
      calls.filter((c) => !replaced(c) && c.name !== "mlpGemmDgelu").map(shape);
    expect(others(fused.calls)).toEqual(others(forward.calls));
    expect(forward.calls.filter(replaced)).toHaveLength(2 * L);
    expect(fused.calls.filter(replaced)).toHaveLength(0);

    // the maps: per block c_fc's weight and c_proj's transposed ([F, D]); per block the kept x
    // (the last block's on the class rows); LN2's output; both signals' residual gradients
    expect(mapShapes(fused.maps)).toEqual([
      ...Array(2 * L).fill([F, D, D, 128, MLP_K_STEP]),
      ...Array(L - 1).fill([R, F, F, 128, MLP_K_STEP]),
      [B, F, F, 128, MLP_K_STEP],
      [R, D, D, 128, MLP_K_STEP],
      [2 * R, D, D, 128, MLP_K_STEP],
      [2 * B, D, D, 128, MLP_K_STEP],
    ]);
    // the x maps are of what the student's c_fc kept, block by block
    const kept = fused.calls
      .filter((c) => c.name === "mlpGemmGelu")
      .map((c) => (c.args[0] as Up).xout)
      .filter((x) => x !== 0);
    expect(fused.maps.slice(2 * L, 3 * L).map(([address]) => address)).toEqual(kept);

    const down = fused.calls.filter((c) => c.name === "mlpGemmDgelu").map((c) => c.args[0] as Down);
    // last block first, on its class rows
    expect(down.map((g) => [g.xRows, g.N, g.K])).toEqual([
      [B, F, D],
      [R, F, D],
    ]);
    expect(down.map((g) => g.mapA)).toEqual([t.ptr("dresBfC.map"), t.ptr("dresBf.map")]);
    expect(down.every((g) => g.out === t.ptr("dF"))).toBe(true);
    expect(new Set(down.map((g) => g.mapB)).size).toBe(L); // each block's c_proj
    expect(new Set(down.map((g) => g.mapX)).size).toBe(L); // each block's kept x
  });
});

describe("TowerModel precision", () => {
  /** One step's launches, the 16-bit uploads and the encoded maps' element types, in `precision`. */
  function stepIn(precision: Precision) {
    const uploads: Uint16Array[] = [];
    const mapTypes: unknown[] = [];
    const driver = {
      computeCapability: 90,
      canEncodeTensorMaps: true,
      upload: (_: number, data: ArrayBufferView) => {
        if (data instanceof Uint16Array) uploads.push(data);
      },
      encodeTensorMap: (...args: unknown[]) => {
        mapTypes.push(args[6]);
        return new Uint8Array(128);
      },
    };
    return { ...recordStep(driver, undefined, precision), uploads, mapTypes };
  }
  const conv1 = tinyModel().weights.get("visual.conv1.weight")?.data as Float32Array;

  it("in fp16: uploads fp16 weights, scales both losses by the power of two at or above the batch and divides it out in the update", () => {
    const { t, named, uploads, mapTypes } = stepIn("fp16");
    expect(
      uploads.some((u) => u.length === conv1.length && u.every((h, i) => h === f32ToF16(conv1[i]))),
    ).toBe(true);
    expect(mapTypes.length).toBeGreaterThan(0);
    expect(mapTypes.every((p) => p === "fp16")).toBe(true);
    expect(t.lossScale).toBe(2); // MAX_BATCH 2
    expect(named("headStep").map(([a]) => (a as { lossScale: number }).lossScale)).toEqual([2]);
    const updates = named("maskUpdate").map(([a]) => (a as { gradScale: number }).gradScale);
    expect(updates).toEqual(Array(t.masked.length).fill(0.5));
  });

  it("in bf16: uploads bf16 weights and scales nothing", () => {
    const { t, named, uploads, mapTypes } = stepIn("bf16");
    expect(
      uploads.some((u) => u.length === conv1.length && u.every((h, i) => h === f32ToBf16(conv1[i]))),
    ).toBe(true);
    expect(mapTypes.every((p) => p === "bf16")).toBe(true);
    expect(t.lossScale).toBe(1);
    expect(named("headStep").map(([a]) => (a as { lossScale: number }).lossScale)).toEqual([1]);
    expect(named("maskUpdate").every(([a]) => (a as { gradScale: number }).gradScale === 1)).toBe(true);
  });
});
