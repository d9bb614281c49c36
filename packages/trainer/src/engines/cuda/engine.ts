/**
 * createCudaEngine: the Engine (src/engine.ts) on an NVIDIA GPU. The step is a fixed sequence of
 * launches (TowerModel.encodeStep) captured once per batch size into a CUDA graph and replayed;
 * per step only the batch (labels, pixels or crop parameters) and {lr, step} move to the GPU,
 * and the losses come back.
 *
 * One rank of several (EngineOptions.distributed, README "Several GPUs"): the engine builds the
 * gradient reducer once its gradient buffers exist and hands it to the tower, whose step calls
 * it (model.ts). Such a step is NOT captured into a CUDA graph: it is issued eagerly every
 * time, so the reducer's NCCL all-reduces (on its own stream, joined by events) and its per-step
 * bookkeeping run outside stream capture. Capturing NCCL needs NCCL >= 2.9, cross-stream capture
 * of the communication stream, and would run the reducer's host-side checks only once, at
 * capture. The eager step costs the host's launch time (bench/device/NOTES.md, one GPU: batch 32
 * 16.07 ms replayed vs 17.4 ms eager with events around every launch; batch 256 118.8 vs 119.2).
 */
import { UnmaskError } from "@unmask/clip";
import type { ReducerContext } from "../../distributed/gradient-reducer.js";
import type {
  Engine,
  EngineFactory,
  EngineModel,
  EngineOptions,
  EngineState,
  ImageCache,
  StepDebug,
  StepOptions,
  StepResult,
  TrainBatch,
} from "../../engine.js";
import { philoxUniforms } from "../../random/philox.js";
import { Cublas } from "./cublas.js";
import { CublasLt } from "./cublas-lt.js";
import { CudaDriver } from "./driver.js";
import { GemmTuner, type GemmTuning } from "./gemm-tuning.js";
import { Kernels, readFatbin } from "./kernels.js";
import { openCudaLibraries } from "./libraries.js";
import { type Epilogues, epilogueRequest, type MaskedTensor, TowerModel } from "./model.js";
import { DEFAULT_PRECISION } from "./precision.js";
import { LaunchProfiler, type ProfileRow } from "./profile.js";

interface Graph {
  exec: number;
  graph: number;
}

/** Opens the GPU, uploads the model, and returns the engine. @throws UnmaskError CUDA_UNAVAILABLE / CUDA_ERROR */
export const createCudaEngine: EngineFactory = async (
  model: EngineModel,
  options: EngineOptions,
): Promise<Engine> => {
  const libs = await openCudaLibraries();
  const cu = CudaDriver.open(libs.koffi, libs.driver, Number(process.env.UNMASK_CUDA_DEVICE ?? 0));
  const stream = cu.createStream();
  const precision = options.precision ?? DEFAULT_PRECISION;
  const kernels = new Kernels(cu, stream, readFatbin(precision));
  // cuBLAS gets its workspace from the arena: create the model first with a placeholder handle.
  let blas: Cublas | undefined;
  const blasProxy = {
    gemm: (c: Parameters<Cublas["gemm"]>[0]) => (blas as Cublas).gemm(c),
  } as unknown as Cublas;
  const tower = new TowerModel(
    cu,
    kernels,
    blasProxy,
    stream,
    model,
    options.maxBatch,
    options.hyper,
    options.seed >>> 0,
    precision,
  );
  tower.logitScale = model.logitScale;
  blas = new Cublas(libs.cublas, cu, stream, tower.workspace, precision);
  // cuBLASLt for the GEMMs with a bias epilogue (model.ts, "GEMM epilogues") and for GEMM tuning
  // (gemm-tuning.ts: on one GPU unless UNMASK_GEMM_TUNE=0; it never changes a bit)
  if (libs.cublasLt) blas.lt = new CublasLt(libs.cublasLt, stream, tower.workspace, precision);
  tower.chooseEpilogues(
    (c) => (blas as Cublas).supportsEpilogue(c),
    epilogueRequest(process.env.UNMASK_GEMM_EPILOGUES),
  );
  let tuner: GemmTuner | undefined;
  if (blas.lt && process.env.UNMASK_GEMM_TUNE !== "0" && !options.distributed)
    tuner = new GemmTuner(cu, blas, blas.lt, kernels, stream);
  const { D, E, C } = tower.dims;
  kernels.prepareHead(D, E, C);
  // One rank of several: the reducer (and the NCCL communicator behind it) binds to the context
  // made current by CudaDriver.open; undefined on a single GPU, where nothing below changes.
  tower.reducer = options.distributed?.createReducer(
    reducerContext(tower, { koffi: libs.koffi, driver: libs.driver }),
  );
  return new CudaEngine(cu, stream, kernels, blas, tower, model, options, tuner);
};

/** What EngineOptions.distributed.createReducer gets: every masked tensor's fp32 [2, numel] gradient. */
export function reducerContext(
  tower: Pick<TowerModel, "masked">,
  cuda: ReducerContext["cuda"],
): ReducerContext {
  return {
    tensors: tower.masked.map((m) => ({ name: m.name, numel: m.numel })),
    gradientPointers: tower.masked.map((m) => m.grads.ptr),
    cuda,
  };
}

/** Exported for tests (with stand-ins for the driver, kernels and cuBLAS); use createCudaEngine. */
export class CudaEngine implements Engine {
  readonly name = "cuda" as const;
  private readonly graphs = new Map<string, Graph>();
  /** Batch sizes whose GEMMs were tuned. */
  private readonly tunedBatches = new Set<number>();
  private cache: { ptr: number; H: number; W: number; count: number } | null = null;
  private readonly params = new ArrayBuffer(16);
  private uniformBuffer = 0;
  private disposed = false;
  /** Page-locked host buffers by use, made on first use; null where the driver refused one. */
  private readonly pinned = new Map<
    "staging" | "snapshot",
    { address: bigint; buffer: ArrayBuffer } | null
  >();
  /** Recorded after snapshotState's copies. */
  private snapshotEvent: number | undefined;

  constructor(
    private readonly cu: CudaDriver,
    private readonly stream: number,
    private readonly kernels: Kernels,
    private readonly blas: Cublas,
    private readonly tower: TowerModel,
    private readonly model: EngineModel,
    private readonly options: EngineOptions,
    private readonly tuner?: GemmTuner,
  ) {
    this.resetState();
  }

  /** Bench hook: which adds run in cuBLASLt epilogues (model.ts). */
  gemmEpilogues(): Epilogues {
    return { ...this.tower.epilogues };
  }

  /** Bench hook: what GEMM tuning measured and chose, one entry per shape. */
  gemmTuning(): GemmTuning[] {
    return this.tuner?.results ?? [];
  }

  /** Scores at their initial value, Adam moments zero, W' = W. */
  private resetState(): void {
    for (const m of this.tower.masked) {
      const s = new Float32Array(m.numel).fill(this.options.hyper.scoreInit);
      this.cu.upload(m.S.ptr, s);
    }
    this.tower.applyMasks();
    this.cu.synchronize(this.stream);
  }

  get deviceName(): string {
    return this.cu.deviceName;
  }

  async setImageCache(cache: ImageCache): Promise<void> {
    if (cache.pixels.length !== cache.count * cache.height * cache.width * 3)
      throw new UnmaskError("BAD_IMAGE_CACHE", "image cache pixels do not match count x height x width x 3", {
        subject: "pixels",
      });
    if (this.cache) this.cu.free(this.cache.ptr);
    const ptr = this.cu.alloc(cache.pixels.byteLength);
    this.cu.upload(ptr, cache.pixels);
    this.cache = { ptr, H: cache.height, W: cache.width, count: cache.count };
    // graphs bake the cache pointer in: drop them
    for (const g of this.graphs.values()) this.cu.destroyGraph(g);
    this.graphs.clear();
  }

  private checkBatch(B: number): void {
    if (!Number.isInteger(B) || B < 1 || B > this.options.maxBatch)
      throw new UnmaskError("BAD_BATCH", `batch of ${B} images exceeds maxBatch ${this.options.maxBatch}`, {
        subject: "batch",
      });
  }

  async step(batch: TrainBatch, options: StepOptions): Promise<StepResult> {
    const B = batch.labels.length;
    this.checkBatch(B);
    const t = this.tower;
    const { res, C } = t.dims;
    for (const y of batch.labels)
      if (y < 0 || y >= C)
        throw new UnmaskError("BAD_LABEL", `label ${y} is outside 0..${C - 1}`, { subject: "labels" });
    this.cu.upload(t.ptr("labels"), batch.labels);
    let crops: { cache: number; H: number; W: number } | null = null;
    if (batch.crops) {
      if (!this.cache)
        throw new UnmaskError("NO_IMAGE_CACHE", "crops given before setImageCache", { subject: "crops" });
      for (const i of batch.crops.indices)
        if (i < 0 || i >= this.cache.count)
          throw new UnmaskError("BAD_INDEX", `image index ${i} is outside the cache`, {
            subject: "crops.indices",
          });
      this.cu.upload(t.ptr("indices"), batch.crops.indices);
      this.cu.upload(t.ptr("boxes"), batch.crops.boxes);
      this.cu.upload(t.ptr("flips"), batch.crops.flips);
      crops = { cache: this.cache.ptr, H: this.cache.H, W: this.cache.W };
    } else if (batch.pixels) {
      if (batch.pixels.length !== B * 3 * res * res)
        throw new UnmaskError("BAD_PIXELS", `pixels must hold ${B} x 3 x ${res} x ${res} values`, {
          subject: "pixels",
        });
      this.cu.upload(t.ptr("pixels"), batch.pixels);
    } else throw new UnmaskError("BAD_BATCH", "a batch needs pixels or crops", { subject: "batch" });

    const h = this.options.hyper;
    const view = new DataView(this.params);
    view.setFloat32(0, options.lr, true);
    view.setFloat32(4, 1 - h.adamBeta1 ** (options.step + 1), true);
    view.setFloat32(8, Math.sqrt(1 - h.adamBeta2 ** (options.step + 1)), true);
    view.setUint32(12, options.step >>> 0, true);
    this.cu.upload(t.ptr("params"), new Uint8Array(this.params));

    let before: Map<string, Float32Array> | undefined;
    if (options.debug) before = (await this.getState()).scores;
    let uniformPtrs: number[] | undefined;
    if (options.uniforms) uniformPtrs = this.uploadUniforms(options.uniforms);

    if (options.debug || uniformPtrs || t.reducer) {
      // eager: the draws' pointers are not part of the graph; a reducer's NCCL calls stay out of
      // stream capture (see the header)
      t.encodeStep(B, crops, uniformPtrs);
    } else {
      const key = `${B}:${crops ? "crops" : "pixels"}`;
      let g = this.graphs.get(key);
      if (!g && this.tuner && !this.tunedBatches.has(B)) {
        // the first step of a batch size runs eagerly; its GEMMs are then tuned on the buffers it
        // left, before the step is captured (tuned algorithms give the same bits: gemm-tuning.ts)
        this.tunedBatches.add(B);
        t.encodeStep(B, crops);
        this.cu.synchronize(this.stream);
        this.tuner.tune(() => t.encodeStep(B, crops));
      } else if (!g) {
        this.cu.beginCapture(this.stream);
        try {
          t.encodeStep(B, crops);
        } finally {
          g = this.cu.endCapture(this.stream);
        }
        this.graphs.set(key, g);
      }
      if (g) this.cu.launchGraph(g.exec, this.stream);
    }
    this.cu.synchronize(this.stream);
    const stats = new Float32Array(B * 4);
    this.cu.download(stats, t.ptr("stats"));
    const norms = new Float32Array(Math.max(1, t.masked.length));
    this.cu.download(norms, t.ptr("norms"));
    let ce = 0;
    let kl = 0;
    let correct = 0;
    for (let b = 0; b < B; b++) {
      ce += stats[b * 4];
      kl += stats[b * 4 + 1];
      correct += stats[b * 4 + 2];
    }
    let normSum = 0;
    for (let i = 0; i < t.masked.length; i++) normSum += Math.sqrt(norms[i]);
    const result: StepResult = { lossCe: ce / B, lossKl: kl / B, lossReg: h.regWeight * normSum, correct };
    if (options.debug && before) result.debug = this.debugOf(B, before, norms, options);
    return result;
  }

  private uploadUniforms(uniforms: Map<string, Float32Array>): number[] {
    const t = this.tower;
    const total = t.masked.reduce((s, m) => s + m.numel, 0);
    if (!this.uniformBuffer) this.uniformBuffer = this.cu.alloc(total * 4);
    const ptrs: number[] = [];
    let offset = 0;
    for (const m of t.masked) {
      const u = uniforms.get(m.name);
      if (!u || u.length !== m.numel)
        throw new UnmaskError("BAD_UNIFORMS", `uniforms for ${m.name} must hold ${m.numel} values`, {
          subject: m.name,
        });
      ptrs[m.index] = this.uniformBuffer + offset * 4;
      this.cu.upload(ptrs[m.index], u);
      offset += m.numel;
    }
    return ptrs;
  }

  /** Logits and per-tensor gradients, recomputed on the host from the GPU's dW' (tests only). */
  private debugOf(
    B: number,
    before: Map<string, Float32Array>,
    norms: Float32Array,
    options: StepOptions,
  ): StepDebug {
    const t = this.tower;
    const { C } = t.dims;
    const logits = new Float32Array(2 * B * C);
    this.cu.download(logits, t.ptr("logits"));
    const h = this.options.hyper;
    const unscale = 1 / t.lossScale;
    const grads = new Map<string, { ce: Float32Array; kl: Float32Array; gdr: Float32Array }>();
    for (const m of t.masked) {
      const g = new Float32Array(2 * m.numel);
      this.cu.download(g, m.grads.ptr);
      const W = this.model.weights.get(m.name)?.data as Float32Array;
      const S = before.get(m.name) as Float32Array;
      const reg = h.regWeight / Math.sqrt(norms[m.index]);
      const u =
        options.uniforms?.get(m.name) ??
        philoxUniforms(this.options.seed >>> 0, options.step, m.index, m.numel);
      const ce = new Float32Array(m.numel);
      const kl = new Float32Array(m.numel);
      const gdr = new Float32Array(m.numel);
      for (let i = 0; i < m.numel; i++) {
        const a = g[i] * unscale * W[i] + reg * S[i];
        const b = g[m.numel + i] * unscale * W[i];
        ce[i] = a;
        kl[i] = b;
        const P = (Math.sign(a) * (a + b)) / (Math.abs(a) + Math.abs(b) + 1e-8);
        const keep = (P + 1) / 2 > u[i] ? 1 : 0;
        gdr[i] = (1 - h.gdrLambda + h.gdrLambda * keep) * a;
      }
      grads.set(m.name, { ce, kl, gdr });
    }
    return { studentLogits: logits.slice(0, B * C), teacherLogits: logits.slice(B * C, 2 * B * C), grads };
  }

  async forward(
    pixels: Float32Array,
    count: number,
    options?: { teacher?: boolean; output?: "logits" | "features" },
  ): Promise<Float32Array> {
    const t = this.tower;
    const { res, C, E } = t.dims;
    const per = 3 * res * res;
    if (pixels.length !== count * per)
      throw new UnmaskError("BAD_PIXELS", `pixels must hold ${count} x 3 x ${res} x ${res} values`, {
        subject: "pixels",
      });
    const output = options?.output ?? "logits";
    const width = output === "logits" ? C : E;
    const out = new Float32Array(count * width);
    for (let start = 0; start < count; start += this.options.maxBatch) {
      const B = Math.min(this.options.maxBatch, count - start);
      this.cu.upload(t.ptr("pixels"), pixels.subarray(start * per, (start + B) * per));
      t.encodeEval(B, options?.teacher === true, output);
      this.cu.synchronize(this.stream);
      this.cu.download(
        out.subarray(start * width, (start + B) * width),
        t.ptr(output === "logits" ? "logits" : "features"),
      );
    }
    return out;
  }

  /**
   * Copies of the scores and Adam moments (~350 MB for ViT-B/16, taken at every checkpoint), into
   * `into`'s arrays when given: each tensor goes through one page-locked staging buffer, which the
   * bus fills several times faster than pageable arrays.
   */
  async getState(into?: EngineState): Promise<EngineState> {
    const state: EngineState = { scores: new Map(), adamM: new Map(), adamV: new Map() };
    this.cu.synchronize(this.stream);
    const staging = this.pinnedBuffer("staging");
    for (const m of this.tower.masked)
      for (const [kind, region] of stateRegions(m)) {
        const old = into?.[kind].get(m.name);
        const a = old?.length === m.numel ? old : new Float32Array(m.numel);
        if (staging) {
          const view = new Float32Array(staging.buffer, 0, m.numel);
          this.cu.download(view, region.ptr);
          a.set(view);
        } else this.cu.download(a, region.ptr);
        state[kind].set(m.name, a);
      }
    return state;
  }

  /**
   * Queues copies of the scores and Adam moments behind the work on the engine's stream into one
   * page-locked buffer (~350 MB for ViT-B/16) and returns at once: the next step can be queued
   * right away, and its update runs after the copies. Resolves (polling an event) with arrays
   * viewing that buffer, valid until the next call. Falls back to getState where page-locked
   * memory is refused.
   */
  async snapshotState(): Promise<EngineState> {
    const snapshot = this.pinnedBuffer("snapshot");
    if (!snapshot) return this.getState();
    const state: EngineState = { scores: new Map(), adamM: new Map(), adamV: new Map() };
    let offset = 0;
    for (const m of this.tower.masked)
      for (const [kind, region] of stateRegions(m)) {
        this.cu.downloadAsync(snapshot.address + BigInt(offset), region.ptr, m.numel * 4, this.stream);
        state[kind].set(m.name, new Float32Array(snapshot.buffer, offset, m.numel));
        offset += m.numel * 4;
      }
    this.snapshotEvent ??= this.cu.createEvent();
    this.cu.record(this.snapshotEvent, this.stream);
    while (!this.cu.eventDone(this.snapshotEvent)) await new Promise((r) => setTimeout(r, 2));
    return state;
  }

  /**
   * The page-locked buffer for `use`, allocated by its first call: getState's staging ("staging",
   * the largest masked tensor) or snapshotState's copy of every S, m and v ("snapshot"). None where
   * the driver refuses page-locked memory (limits): the pageable paths still work.
   */
  private pinnedBuffer(use: "staging" | "snapshot"): { address: bigint; buffer: ArrayBuffer } | undefined {
    if (!this.pinned.has(use)) {
      const masked = this.tower.masked;
      const bytes =
        use === "staging"
          ? 4 * Math.max(...masked.map((m) => m.numel))
          : masked.reduce((sum, m) => sum + 3 * 4 * m.numel, 0);
      try {
        this.pinned.set(use, this.cu.allocHost(bytes));
      } catch {
        this.pinned.set(use, null);
      }
    }
    return this.pinned.get(use) ?? undefined;
  }

  async setState(state: EngineState): Promise<void> {
    for (const m of this.tower.masked)
      for (const [kind, region] of stateRegions(m)) {
        const a = state[kind].get(m.name);
        if (!a || a.length !== m.numel)
          throw new UnmaskError("BAD_STATE", `state for ${m.name} must hold ${m.numel} values`, {
            subject: m.name,
          });
        this.cu.upload(region.ptr, a);
      }
    this.tower.applyMasks();
    this.cu.synchronize(this.stream);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.cu.synchronize(this.stream);
    for (const g of this.graphs.values()) this.cu.destroyGraph(g);
    this.graphs.clear();
    this.tower.reducer?.dispose();
    if (this.cache) this.cu.free(this.cache.ptr);
    if (this.uniformBuffer) this.cu.free(this.uniformBuffer);
    for (const buffer of this.pinned.values()) if (buffer) this.cu.freeHost(buffer.address);
    if (this.snapshotEvent !== undefined) this.cu.destroyEvent(this.snapshotEvent);
    this.blas.dispose();
    this.kernels.dispose();
    this.cu.free(this.tower.arena.base);
    this.cu.destroyStream(this.stream);
    this.cu.close();
  }

  /** Bench hook: milliseconds of `repeats` graph replays of the step already captured for `B`. */
  timeGraph(B: number, repeats: number): number {
    const g = this.graphs.get(`${B}:pixels`) ?? this.graphs.get(`${B}:crops`);
    if (!g) throw new Error("no graph captured for this batch");
    const e0 = this.cu.createEvent();
    const e1 = this.cu.createEvent();
    this.cu.record(e0, this.stream);
    for (let i = 0; i < repeats; i++) this.cu.launchGraph(g.exec, this.stream);
    this.cu.record(e1, this.stream);
    const ms = this.cu.elapsed(e0, e1);
    this.cu.destroyEvent(e0);
    this.cu.destroyEvent(e1);
    return ms / repeats;
  }

  /**
   * Bench hook: the step of batch `B` run eagerly with every launch timed (inputs as left by the
   * last step()); per-name milliseconds, largest first.
   */
  profileStep(B: number): ProfileRow[] {
    // a step run by one rank alone would wait inside NCCL for the others
    if (this.tower.reducer) throw new Error("profileStep runs on a single GPU only");
    const profiler = new LaunchProfiler(this.cu, this.stream);
    this.kernels.profiler = profiler;
    this.blas.profiler = profiler;
    try {
      const crops = this.cache ? { cache: this.cache.ptr, H: this.cache.H, W: this.cache.W } : null;
      this.tower.encodeStep(B, crops);
      return profiler.report();
    } finally {
      this.kernels.profiler = undefined;
      this.blas.profiler = undefined;
      profiler.dispose();
    }
  }

  memoryBreakdown(): { name: string; bytes: number; count: number }[] {
    return this.tower.arena.breakdown();
  }

  memoryInUse(): { arenaBytes: number; deviceUsed: number } {
    const info = this.cu.memInfo();
    return { arenaBytes: this.tower.arena.totalBytes, deviceUsed: info.total - info.free };
  }
}

/** A masked tensor's device regions behind each part of EngineState. */
function stateRegions(m: MaskedTensor) {
  return [
    ["scores", m.S],
    ["adamM", m.m],
    ["adamV", m.v],
  ] as const;
}
