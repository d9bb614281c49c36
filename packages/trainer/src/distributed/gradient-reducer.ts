/**
 * The integration point between an engine's step and the other ranks: the engine tells the
 * reducer when each masked tensor's [2, numel] gradient (ce, kl; fp32) is final in the backward,
 * and waits for the reduced gradients before its update kernels. Everything after (gradient
 * dropout with the shared Philox stream, Adam) is unchanged, so every rank applies the same
 * update to the same scores and they stay identical without a broadcast.
 *
 * Engine side, per step (docs: README "Several GPUs"):
 *   backward: after the GEMM that writes tensor t's gradient:  reducer.tensorReady(t, stream)
 *   before update():                                           reducer.wait(stream)
 * Both only enqueue work on streams (no host synchronisation). The cuda engine issues a
 * distributed step eagerly rather than replaying its CUDA graph, so the NCCL calls never run
 * under graph capture (capturing them needs NCCL >= 2.9 and capture across the second stream).
 *
 * NcclGradientReducer: when a bucket's last tensor is ready, an event recorded on the compute
 * stream makes a communication stream wait, and the bucket's all-reduce runs there while the
 * compute stream goes on with the backward of earlier layers. wait() joins the two streams.
 */
import { UnmaskError } from "@unmask/clip";
import type { Koffi, Library } from "../engines/cuda/libraries.js";
import {
  type BucketPlan,
  type BucketTensor,
  GRADIENT_ELEMENT_BYTES,
  GRADIENT_SIGNALS,
  planBuckets,
} from "./buckets.js";
import type { NcclCommunicator } from "./nccl.js";

export interface GradientReducer {
  readonly worldSize: number;
  readonly plan: BucketPlan;
  /**
   * Tensor `tensorIndex` (EngineModel.maskedTensors order) has its final gradient on `stream`.
   * When that completes its bucket, the bucket's all-reduce is enqueued. Returns at once.
   */
  tensorReady(tensorIndex: number, stream: number): void;
  /** Makes `stream` wait for every bucket's all-reduce. Once per step, before the update. */
  wait(stream: number): void;
  dispose(): void;
}

/** What the engine hands over once its gradient buffers exist. */
export interface ReducerContext {
  /** The masked tensors, in EngineModel.maskedTensors order. */
  tensors: BucketTensor[];
  /** Device pointer of each tensor's fp32 [2, numel] gradient, same order. */
  gradientPointers: number[];
  /** The engine's koffi and libcuda handle (the reducer declares its stream and event calls on it). */
  cuda: { koffi: Koffi; driver: Library };
}

/** The option an engine receives (EngineOptions.distributed) when it is one rank of several. */
export interface DistributedEngineOptions {
  rank: number;
  worldSize: number;
  /** Called once by the engine after it allocated its gradients (and made its CUDA context current). */
  createReducer(context: ReducerContext): GradientReducer;
}

/** Counts the tensors still missing per bucket; shared by every reducer. */
class BucketTracker {
  private readonly remaining: number[];
  private readonly tensorDone: boolean[];

  constructor(readonly plan: BucketPlan) {
    this.remaining = plan.buckets.map((b) => b.slots.length);
    this.tensorDone = plan.slots.map(() => false);
  }

  /** Marks `tensorIndex` ready; returns its bucket when that was the bucket's last tensor. */
  ready(tensorIndex: number): number | undefined {
    const b = this.plan.bucketOf[tensorIndex];
    if (b === undefined)
      throw new UnmaskError("REDUCER_ORDER", `tensorReady(${tensorIndex}): no such masked tensor`, {
        subject: "tensorIndex",
      });
    if (this.tensorDone[tensorIndex])
      throw new UnmaskError("REDUCER_ORDER", `tensorReady(${tensorIndex}) called twice in one step`, {
        subject: this.plan.slots[tensorIndex].name,
      });
    this.tensorDone[tensorIndex] = true;
    this.remaining[b]--;
    return this.remaining[b] === 0 ? b : undefined;
  }

  /** Checks every tensor was handed over this step, then re-arms for the next. */
  finishStep(): void {
    const missing = this.plan.slots.filter((s) => !this.tensorDone[s.tensorIndex]);
    if (missing.length > 0)
      throw new UnmaskError(
        "REDUCER_ORDER",
        `wait() before the gradients of ${missing.map((s) => s.name).join(", ")} were ready: the engine must call tensorReady for every masked tensor`,
        { subject: missing[0].name },
      );
    this.plan.buckets.forEach((b, i) => {
      this.remaining[i] = b.slots.length;
    });
    this.tensorDone.fill(false);
  }
}

/**
 * A world of 1: nothing to combine. Still checks the engine's calls, so the single-GPU path
 * exercises the same hooks as a multi-GPU run.
 */
export function identityReducer(tensors: BucketTensor[]): GradientReducer & { reducedBuckets: number[] } {
  const tracker = new BucketTracker(planBuckets({ tensors }));
  const reducedBuckets: number[] = [];
  return {
    worldSize: 1,
    plan: tracker.plan,
    reducedBuckets,
    tensorReady(tensorIndex) {
      const b = tracker.ready(tensorIndex);
      if (b !== undefined) reducedBuckets.push(b);
    },
    wait() {
      tracker.finishStep();
    },
    dispose() {},
  };
}

// biome-ignore lint/suspicious/noExplicitAny: koffi functions are variadic by declaration
type Fn = (...args: any[]) => any;

const CU_STREAM_NON_BLOCKING = 1;
const CU_EVENT_DISABLE_TIMING = 2;

/** The stream and event calls the reducer makes (a seam for tests; cudaStreamOps on a GPU). */
export interface ReducerStreams {
  createStream(): number;
  createEvent(): number;
  /** `waiter` waits (on the GPU, not the host) for the work enqueued on `signaller` so far. */
  join(waiter: number, signaller: number, event: number): void;
  destroyEvent(event: number): void;
  destroyStream(stream: number): void;
}

/** The few driver calls the reducer needs beyond engines/cuda/driver.ts, declared on the engine's libcuda. */
export function cudaStreamOps(driver: Library): ReducerStreams {
  return new StreamOps(driver);
}

class StreamOps implements ReducerStreams {
  private readonly fns: Record<string, Fn> = {};
  constructor(driver: Library) {
    const declare = (name: string, proto: string) => {
      this.fns[name] = driver.func(proto.replace("NAME", name)) as Fn;
    };
    declare("cuStreamCreate", "int NAME(_Out_ uint64_t *stream, unsigned int flags)");
    declare("cuStreamDestroy_v2", "int NAME(uint64_t stream)");
    declare("cuEventCreate", "int NAME(_Out_ uint64_t *event, unsigned int flags)");
    declare("cuEventDestroy_v2", "int NAME(uint64_t event)");
    declare("cuEventRecord", "int NAME(uint64_t event, uint64_t stream)");
    declare("cuStreamWaitEvent", "int NAME(uint64_t stream, uint64_t event, unsigned int flags)");
  }
  private check(call: string, code: number): void {
    if (code !== 0)
      throw new UnmaskError("CUDA_ERROR", `${call} failed: CUDA error ${code}`, { subject: call });
  }
  createStream(): number {
    const out = [0];
    this.check("cuStreamCreate", this.fns.cuStreamCreate(out, CU_STREAM_NON_BLOCKING));
    return Number(out[0]);
  }
  createEvent(): number {
    const out = [0];
    this.check("cuEventCreate", this.fns.cuEventCreate(out, CU_EVENT_DISABLE_TIMING));
    return Number(out[0]);
  }
  join(waiter: number, signaller: number, event: number): void {
    this.check("cuEventRecord", this.fns.cuEventRecord(event, signaller));
    this.check("cuStreamWaitEvent", this.fns.cuStreamWaitEvent(waiter, event, 0));
  }
  destroyEvent(event: number): void {
    this.fns.cuEventDestroy_v2(event);
  }
  destroyStream(stream: number): void {
    this.fns.cuStreamDestroy_v2(stream);
  }
}

export interface NcclReducerOptions {
  comm: Pick<NcclCommunicator, "worldSize" | "allReduce" | "group">;
  context: ReducerContext;
  /** Pre-multiplier of this rank's gradients (sharding.ts reduceWeight); default 1 / worldSize. */
  weight?: number;
  bucketBytes?: number;
  /** Default: cudaStreamOps(context.cuda.driver). */
  streams?: ReducerStreams;
}

/** One contiguous device range to all-reduce. */
interface Span {
  ptr: number;
  count: number;
}

/** Spans of a bucket: one when its slots lie back to back in memory (the plan's layout), else one per tensor. */
export function bucketSpans(plan: BucketPlan, bucket: number, gradientPointers: number[]): Span[] {
  const spans: Span[] = [];
  for (const slot of plan.buckets[bucket].slots) {
    const ptr = gradientPointers[slot.tensorIndex];
    const count = GRADIENT_SIGNALS * slot.numel;
    const last = spans.at(-1);
    if (last && last.ptr + last.count * GRADIENT_ELEMENT_BYTES === ptr) last.count += count;
    else spans.push({ ptr, count });
  }
  return spans;
}

export class NcclGradientReducer implements GradientReducer {
  readonly worldSize: number;
  readonly plan: BucketPlan;
  private readonly tracker: BucketTracker;
  private readonly ops: ReducerStreams;
  private readonly commStream: number;
  private readonly readyEvents: number[];
  private readonly doneEvent: number;
  private readonly spans: Span[][];

  constructor(private readonly options: NcclReducerOptions) {
    const { comm, context } = options;
    this.worldSize = comm.worldSize;
    this.plan = planBuckets({ tensors: context.tensors, bucketBytes: options.bucketBytes });
    this.tracker = new BucketTracker(this.plan);
    if (context.gradientPointers.length !== context.tensors.length)
      throw new UnmaskError(
        "BAD_OPTION",
        `${context.gradientPointers.length} gradient pointers for ${context.tensors.length} masked tensors`,
        { subject: "gradientPointers" },
      );
    this.spans = this.plan.buckets.map((_, b) => bucketSpans(this.plan, b, context.gradientPointers));
    this.ops = options.streams ?? cudaStreamOps(context.cuda.driver);
    this.commStream = this.ops.createStream();
    this.readyEvents = this.plan.buckets.map(() => this.ops.createEvent());
    this.doneEvent = this.ops.createEvent();
  }

  tensorReady(tensorIndex: number, stream: number): void {
    const b = this.tracker.ready(tensorIndex);
    if (b === undefined) return;
    this.ops.join(this.commStream, stream, this.readyEvents[b]);
    const { comm, weight } = this.options;
    const spans = this.spans[b];
    const reduce = () => {
      for (const s of spans)
        comm.allReduce({ send: s.ptr, recv: s.ptr, count: s.count, stream: this.commStream, weight });
    };
    // Tensors not laid out back to back go as one NCCL group (one launch) instead of one span.
    if (spans.length > 1) comm.group(reduce);
    else reduce();
  }

  wait(stream: number): void {
    this.tracker.finishStep();
    this.ops.join(stream, this.commStream, this.doneEvent);
  }

  dispose(): void {
    for (const e of this.readyEvents) this.ops.destroyEvent(e);
    this.ops.destroyEvent(this.doneEvent);
    this.ops.destroyStream(this.commStream);
  }
}
