import { defaultMaskedTensors } from "@unmask/clip";
import { describe, expect, it } from "vitest";
import { randomVitModel } from "../engines/cpu/random-model.js";
import {
  type BucketPlan,
  backwardOrder,
  bucketView,
  DEFAULT_BUCKET_BYTES,
  GRADIENT_SIGNALS,
  planBuckets,
  slotViews,
} from "./buckets.js";

/** The published R-AMT masks of ViT-B/16: conv1 and attention in/out of 12 blocks, in list order. */
function vitB16Tensors() {
  const D = 768;
  const names = ["visual.conv1.weight"];
  for (let l = 0; l < 12; l++)
    names.push(
      `visual.transformer.resblocks.${l}.attn.in_proj_weight`,
      `visual.transformer.resblocks.${l}.attn.out_proj.weight`,
    );
  const numel = (name: string) =>
    name.endsWith("conv1.weight") ? D * 3 * 16 * 16 : name.endsWith("in_proj_weight") ? 3 * D * D : D * D;
  return names.map((name) => ({ name, numel: numel(name) }));
}

/** Every float of the flat buffer belongs to exactly one slot, and slots sit inside their buckets. */
function expectExactCover(plan: BucketPlan, tensors: { numel: number }[]) {
  // slots sorted by offset must tile [0, totalElements) with no gap and no overlap
  const intervals = plan.slots
    .map((s) => [s.offsetElements, s.offsetElements + GRADIENT_SIGNALS * s.numel])
    .sort((a, b) => a[0] - b[0]);
  let end = 0;
  for (const [from, to] of intervals) {
    expect(from).toBe(end);
    end = to;
  }
  expect(end).toBe(plan.totalElements);
  expect(new Set(plan.slots.map((s) => s.tensorIndex)).size).toBe(tensors.length);
  expect(plan.totalElements).toBe(GRADIENT_SIGNALS * tensors.reduce((a, t) => a + t.numel, 0));
  let offset = 0;
  for (const b of plan.buckets) {
    expect(b.offsetElements).toBe(offset);
    let inner = b.offsetElements;
    for (const s of b.slots) {
      expect(s.offsetElements).toBe(inner);
      expect(plan.bucketOf[s.tensorIndex]).toBe(b.index);
      inner += GRADIENT_SIGNALS * s.numel;
    }
    expect(inner - b.offsetElements).toBe(b.elements);
    offset += b.elements;
  }
}

describe("planBuckets", () => {
  it("ViT-B/16: 12 buckets of 18-25 MiB in reverse layer order, every gradient float once", () => {
    const tensors = vitB16Tensors();
    const plan = planBuckets({ tensors });
    expectExactCover(plan, tensors);
    const names = plan.buckets.map((b) =>
      b.slots.map((s) => s.name.replace("visual.transformer.resblocks.", "")),
    );
    expect(names[0]).toEqual([
      "11.attn.out_proj.weight",
      "11.attn.in_proj_weight",
      "10.attn.out_proj.weight",
    ]);
    expect(names[1]).toEqual(["10.attn.in_proj_weight", "9.attn.out_proj.weight"]);
    expect(names.at(-1)).toEqual(["0.attn.in_proj_weight", "visual.conv1.weight"]);
    expect(plan.buckets.length).toBe(12);
    for (const b of plan.buckets) {
      expect(b.elements * 4).toBeLessThanOrEqual(DEFAULT_BUCKET_BYTES);
      expect(b.elements * 4).toBeGreaterThanOrEqual(18 * 2 ** 20);
    }
  });

  it("orders the backward: last block first, c_proj, c_fc, out_proj, in_proj inside a block, embeddings last", () => {
    const names = [
      "visual.conv1.weight",
      "visual.transformer.resblocks.0.attn.in_proj_weight",
      "visual.transformer.resblocks.0.mlp.c_fc.weight",
      "visual.transformer.resblocks.1.attn.out_proj.weight",
      "visual.transformer.resblocks.0.mlp.c_proj.weight",
      "visual.transformer.resblocks.1.attn.in_proj_weight",
      "visual.transformer.resblocks.10.attn.in_proj_weight",
    ];
    expect(backwardOrder(names)).toEqual([6, 3, 5, 4, 2, 1, 0]);
    const published = defaultMaskedTensors(
      randomVitModel({ resolution: 16, patch: 8, width: 64, layers: 2, embed: 16, classes: 2 }).config,
    );
    expect(published.filter((_, i) => i === backwardOrder(published)[0])).toEqual([
      "visual.transformer.resblocks.1.attn.out_proj.weight",
    ]);
  });

  it("gives an oversize tensor a bucket of its own and closes a bucket before it overflows", () => {
    const tensors = [
      { name: "a", numel: 10 },
      { name: "b", numel: 100 },
      { name: "c", numel: 3 },
      { name: "d", numel: 3 },
      { name: "e", numel: 4 },
    ];
    // cap 64 bytes = 16 floats = 8 entries x 2 signals
    const plan = planBuckets({ tensors, bucketBytes: 64, readyOrder: [0, 1, 2, 3, 4] });
    expectExactCover(plan, tensors);
    expect(plan.buckets.map((b) => b.slots.map((s) => s.name))).toEqual([["a"], ["b"], ["c", "d"], ["e"]]);
    // c + d = 12 floats fit in 16; adding e (8 floats) would not. A tensor of exactly the cap fits alone:
    const exact = planBuckets({
      tensors: [
        { name: "x", numel: 8 },
        { name: "y", numel: 1 },
      ],
      bucketBytes: 64,
      readyOrder: [0, 1],
    });
    expect(exact.buckets.map((b) => b.slots.length)).toEqual([1, 1]);
  });

  it("one bucket when the cap is large; the identity plan of a world of 1 still covers everything", () => {
    const tensors = vitB16Tensors();
    const plan = planBuckets({ tensors, bucketBytes: 2 ** 40 });
    expect(plan.buckets.length).toBe(1);
    expectExactCover(plan, tensors);
  });

  it("views: slot views alias the flat buffer, bucket views are the slots' concatenation", () => {
    const tensors = [
      { name: "visual.transformer.resblocks.0.attn.in_proj_weight", numel: 6 },
      { name: "visual.transformer.resblocks.1.attn.in_proj_weight", numel: 4 },
      { name: "visual.conv1.weight", numel: 2 },
    ];
    const plan = planBuckets({ tensors, bucketBytes: 64 });
    const flat = new Float32Array(plan.totalElements);
    const views = slotViews(plan, flat);
    for (const [t, v] of views.entries()) v.fill(t + 1);
    expect(Array.from(flat)).toEqual([
      ...new Array(8).fill(2),
      ...new Array(12).fill(1),
      ...new Array(4).fill(3),
    ]);
    expect(plan.buckets.length).toBe(2);
    expect(Array.from(bucketView(plan, flat, 1))).toEqual([
      ...new Array(12).fill(1),
      ...new Array(4).fill(3),
    ]);
    expect(() => slotViews(plan, new Float32Array(3))).toThrow(/needs 24/);
  });

  it("rejects bad sizes, caps and orders with BAD_OPTION", () => {
    const tensors = [
      { name: "a", numel: 2 },
      { name: "b", numel: 2 },
    ];
    for (const options of [
      { tensors: [{ name: "z", numel: 0 }] },
      { tensors, bucketBytes: 0 },
      { tensors, readyOrder: [0] },
      { tensors, readyOrder: [0, 0] },
      { tensors, readyOrder: [0, 2] },
    ])
      expect(() => planBuckets(options)).toThrow(expect.objectContaining({ code: "BAD_OPTION" }));
  });
});
