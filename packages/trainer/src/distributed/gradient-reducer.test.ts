import { describe, expect, it } from "vitest";
import { type BucketTensor, GRADIENT_SIGNALS, planBuckets, slotViews } from "./buckets.js";
import {
  bucketSpans,
  identityReducer,
  NcclGradientReducer,
  type NcclReducerOptions,
  type ReducerStreams,
} from "./gradient-reducer.js";
import type { AllReduceArgs } from "./nccl.js";

const block = (l: number, kind: "in" | "out") =>
  `visual.transformer.resblocks.${l}.attn.${kind === "in" ? "in_proj_weight" : "out_proj.weight"}`;

/** conv1 + attention of 3 blocks, tiny sizes; the list order is the engine's (conv first). */
const TENSORS: BucketTensor[] = [
  { name: "visual.conv1.weight", numel: 6 },
  { name: block(0, "in"), numel: 12 },
  { name: block(0, "out"), numel: 4 },
  { name: block(1, "in"), numel: 12 },
  { name: block(1, "out"), numel: 4 },
  { name: block(2, "in"), numel: 12 },
  { name: block(2, "out"), numel: 4 },
];
/** The order the backward finishes them. */
const BACKWARD = [6, 5, 4, 3, 2, 1, 0];
/** 32 floats = 16 entries x 2 signals per bucket at most. */
const BUCKET_BYTES = 128;

type Call = string;

/** Streams and a communicator that only record what they are asked to do. */
function recorder(worldSize = 2) {
  const calls: Call[] = [];
  let next = 100;
  const streams: ReducerStreams = {
    createStream: () => next++,
    createEvent: () => next++,
    join: (waiter, signaller, event) => calls.push(`join ${waiter}<-${signaller} e${event}`),
    destroyEvent: (e) => calls.push(`destroy e${e}`),
    destroyStream: (s) => calls.push(`destroy s${s}`),
  };
  const allReduces: AllReduceArgs[] = [];
  const comm: NcclReducerOptions["comm"] = {
    worldSize,
    allReduce: (args) => {
      allReduces.push(args);
      calls.push(`allReduce ${args.send}+${args.count} on ${args.stream}`);
    },
    group: (enqueue) => {
      calls.push("groupStart");
      enqueue();
      calls.push("groupEnd");
    },
  };
  return { calls, streams, comm, allReduces };
}

const cuda = { koffi: undefined as never, driver: undefined as never };

/** Pointers of a flat buffer at `base` laid out by the plan (what the engine edit produces). */
function flatPointers(base: number) {
  const plan = planBuckets({ tensors: TENSORS, bucketBytes: BUCKET_BYTES });
  return plan.slots.map((s) => base + 4 * s.offsetElements);
}

describe("identityReducer (a world of 1)", () => {
  it("completes buckets in backward order and checks the engine's calls", () => {
    const r = identityReducer(TENSORS);
    expect(r.worldSize).toBe(1);
    for (let step = 0; step < 2; step++) {
      for (const t of BACKWARD) r.tensorReady(t, 1);
      r.wait(1);
    }
    expect(r.reducedBuckets).toEqual([0, 0]); // one 25 MiB bucket holds these tiny tensors
    r.tensorReady(6, 1);
    expect(() => r.tensorReady(6, 1)).toThrow(expect.objectContaining({ code: "REDUCER_ORDER" }));
    expect(() => r.wait(1)).toThrow(/wait\(\) before the gradients of .*conv1/);
    expect(() => r.tensorReady(99, 1)).toThrow(/no such masked tensor/);
  });
});

describe("NcclGradientReducer", () => {
  it("all-reduces each bucket on the communication stream as soon as its last tensor is ready", () => {
    const rec = recorder();
    const base = 1 << 20;
    const r = new NcclGradientReducer({
      comm: rec.comm,
      context: { tensors: TENSORS, gradientPointers: flatPointers(base), cuda },
      bucketBytes: BUCKET_BYTES,
      streams: rec.streams,
    });
    // buckets: [2.out, 2.in] (32 floats), [1.out, 1.in] (32), [0.out, 0.in] (32), [conv1] (12)
    expect(r.plan.buckets.map((b) => b.slots.map((s) => s.tensorIndex))).toEqual([
      [6, 5],
      [4, 3],
      [2, 1],
      [0],
    ]);
    const [comm, e0, e1, e2, e3, done] = [100, 101, 102, 103, 104, 105];
    const compute = 7;
    for (const t of BACKWARD) {
      rec.calls.push(`ready ${t}`);
      r.tensorReady(t, compute);
    }
    r.wait(compute);
    expect(rec.calls).toEqual([
      "ready 6",
      "ready 5",
      `join ${comm}<-${compute} e${e0}`,
      `allReduce ${base}+32 on ${comm}`,
      "ready 4",
      "ready 3",
      `join ${comm}<-${compute} e${e1}`,
      `allReduce ${base + 4 * 32}+32 on ${comm}`,
      "ready 2",
      "ready 1",
      `join ${comm}<-${compute} e${e2}`,
      `allReduce ${base + 4 * 64}+32 on ${comm}`,
      "ready 0",
      `join ${comm}<-${compute} e${e3}`,
      `allReduce ${base + 4 * 96}+12 on ${comm}`,
      `join ${compute}<-${comm} e${done}`,
    ]);
    expect(rec.allReduces.every((a) => a.send === a.recv && a.weight === undefined)).toBe(true);
    rec.calls.length = 0;
    r.dispose();
    expect(rec.calls).toEqual([
      `destroy e${e0}`,
      `destroy e${e1}`,
      `destroy e${e2}`,
      `destroy e${e3}`,
      `destroy e${done}`,
      `destroy s${comm}`,
    ]);
  });

  it("falls back to one grouped call per tensor when the engine's gradients are not back to back", () => {
    const rec = recorder();
    // the arena today: each tensor's gradient beside its weights, scores and moments
    const scattered = TENSORS.map((_, i) => 10_000 * (i + 1));
    const r = new NcclGradientReducer({
      comm: rec.comm,
      context: { tensors: TENSORS, gradientPointers: scattered, cuda },
      bucketBytes: BUCKET_BYTES,
      streams: rec.streams,
    });
    r.tensorReady(6, 7);
    r.tensorReady(5, 7);
    expect(rec.calls.slice(1)).toEqual([
      "groupStart",
      "allReduce 70000+8 on 100",
      "allReduce 60000+24 on 100",
      "groupEnd",
    ]);
    expect(bucketSpans(r.plan, 3, scattered)).toEqual([{ ptr: 10_000, count: 12 }]);
  });

  it("refuses a pointer list that does not match the tensors", () => {
    const rec = recorder();
    expect(
      () =>
        new NcclGradientReducer({
          comm: rec.comm,
          context: { tensors: TENSORS, gradientPointers: [1, 2], cuda },
          streams: rec.streams,
        }),
    ).toThrow(/2 gradient pointers for 7 masked tensors/);
  });

  it("a simulated world of 3 with unequal shards ends with identical, correctly weighted gradients", () => {
    // Each rank's flat gradient lives in host memory; the fake collective executes the recorded
    // all-reduces across ranks the way NCCL does: sum of weight_r x values_r, written to all.
    const world = 3;
    const weights = [2 / 7, 2 / 7, 3 / 7]; // shards of 2, 2 and 3 rows of a global batch of 7
    const plan = planBuckets({ tensors: TENSORS, bucketBytes: BUCKET_BYTES });
    const flats = weights.map((_, r) =>
      Float32Array.from({ length: plan.totalElements }, (_, i) => (r + 1) * 0.5 + i),
    );
    const recs = weights.map(() => recorder(world));
    weights.forEach((weight, r) => {
      const reducer = new NcclGradientReducer({
        comm: recs[r].comm,
        context: { tensors: TENSORS, gradientPointers: plan.slots.map((s) => 4 * s.offsetElements), cuda },
        bucketBytes: BUCKET_BYTES,
        weight,
        streams: recs[r].streams,
      });
      for (const t of BACKWARD) reducer.tensorReady(t, 7);
      reducer.wait(7);
    });
    const expected = flats[0].map((_, i) => flats.reduce((a, f, r) => a + Math.fround(weights[r] * f[i]), 0));
    const calls = recs[0].allReduces.length;
    for (let k = 0; k < calls; k++) {
      const args = recs.map((rec) => rec.allReduces[k]);
      const { send, count } = args[0];
      expect(args.every((a) => a.send === send && a.count === count)).toBe(true); // ranks agree on the sequence
      const sum = new Float32Array(count);
      args.forEach((a, r) => {
        const values = flats[r].subarray(send / 4, send / 4 + count);
        for (let i = 0; i < count; i++) sum[i] += Math.fround((a.weight ?? 1 / world) * values[i]);
      });
      for (const f of flats) f.set(sum, send / 4);
    }
    expect(Array.from(flats[1])).toEqual(Array.from(flats[0]));
    expect(Array.from(flats[2])).toEqual(Array.from(flats[0]));
    for (let i = 0; i < expected.length; i++) expect(flats[0][i]).toBeCloseTo(expected[i], 4);
    // every gradient float was reduced exactly once: the views of each tensor changed
    const views = slotViews(plan, flats[0]);
    expect(views.map((v) => v.length)).toEqual(TENSORS.map((t) => GRADIENT_SIGNALS * t.numel));
  });
});
