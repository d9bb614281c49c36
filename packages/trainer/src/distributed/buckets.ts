/**
 * Gradient buckets: how the masked tensors' two gradients (ce and kl, fp32) are laid out in one
 * flat buffer so that each all-reduce moves one contiguous range, and in which order.
 *
 * Layout: bucket after bucket; inside a bucket, tensor after tensor; each tensor's slot is the
 * engine's existing [2, numel] gradient (ce row, then kl row). So a slot is exactly what an
 * engine's per-tensor `grads` buffer holds today, placed at `slot.offsetElements` of the flat
 * buffer instead of wherever the arena put it.
 *
 * Order: the backward pass finishes the last block's tensors first, so buckets follow reverse
 * layer order (PyTorch DDP's reverse parameter order) and the first bucket's all-reduce starts
 * while the backward is still working on earlier layers. A bucket closes when the next tensor
 * would take it past `bucketBytes` (DDP's 25 MiB default); a tensor larger than that gets a
 * bucket of its own (tensors are never split: the engine hands over whole tensors).
 *
 * ViT-B/16 with the published masks (conv1 + attention in/out of 12 blocks): 18 MiB of
 * gradients per block (2.36 M entries x 2 signals x 4 bytes), so 12 buckets of 18-22.5 MiB:
 * [11.out_proj, 11.in_proj, 10.out_proj], [10.in_proj, 9.out_proj], ..., [0.in_proj, conv1].
 */
import { UnmaskError } from "@unmask/clip";

/** ce and kl: every slot holds two gradient rows. */
export const GRADIENT_SIGNALS = 2;
export const GRADIENT_ELEMENT_BYTES = 4;
/** PyTorch DDP's bucket_cap_mb default: large enough for bandwidth, small enough to overlap. */
export const DEFAULT_BUCKET_BYTES = 25 * 2 ** 20;

export interface BucketTensor {
  name: string;
  /** Entries of the masked weight (a slot holds GRADIENT_SIGNALS times as many floats). */
  numel: number;
}

export interface BucketSlot {
  /** Position in the engine's masked-tensor list (EngineModel.maskedTensors). */
  tensorIndex: number;
  name: string;
  numel: number;
  /** Where the slot's [2, numel] floats start in the flat buffer. */
  offsetElements: number;
}

export interface Bucket {
  index: number;
  offsetElements: number;
  /** Floats in the bucket: 2 x the sum of its tensors' numel. */
  elements: number;
  slots: BucketSlot[];
}

export interface BucketPlan {
  buckets: Bucket[];
  /** Floats in the flat buffer. */
  totalElements: number;
  /** Slot of each tensor, by tensor index. */
  slots: BucketSlot[];
  /** Bucket of each tensor, by tensor index. */
  bucketOf: number[];
}

export interface BucketPlanOptions {
  /** The masked tensors in the engine's order. */
  tensors: readonly BucketTensor[];
  bucketBytes?: number;
  /** Tensor indices in the order the backward completes them; default: backwardOrder(names). */
  readyOrder?: readonly number[];
}

const BLOCK_TENSOR = /^visual\.transformer\.resblocks\.(\d+)\.(.+)$/;
/** Inside a block the backward meets the MLP before attention, and each sub-layer's output projection first. */
const BLOCK_BACKWARD_RANK: Record<string, number> = {
  "mlp.c_proj.weight": 0,
  "mlp.c_fc.weight": 1,
  "attn.out_proj.weight": 2,
  "attn.in_proj_weight": 3,
};

/**
 * Tensor indices in the order a ViT backward completes their gradients: blocks from last to
 * first (inside a block: c_proj, c_fc, out_proj, in_proj), then everything below the blocks
 * (the patch embedding), in list order.
 */
export function backwardOrder(names: readonly string[]): number[] {
  const key = (name: string): [number, number] => {
    const m = BLOCK_TENSOR.exec(name);
    if (!m) return [Number.NEGATIVE_INFINITY, 0];
    return [Number(m[1]), BLOCK_BACKWARD_RANK[m[2]] ?? 4];
  };
  return names
    .map((name, index) => ({ index, key: key(name) }))
    .sort((a, b) => b.key[0] - a.key[0] || a.key[1] - b.key[1] || a.index - b.index)
    .map((t) => t.index);
}

/** @throws UnmaskError BAD_OPTION when the tensors or the order are inconsistent */
export function planBuckets(options: BucketPlanOptions): BucketPlan {
  const { tensors } = options;
  const bucketBytes = options.bucketBytes ?? DEFAULT_BUCKET_BYTES;
  if (!(Number.isSafeInteger(bucketBytes) && bucketBytes > 0))
    throw new UnmaskError("BAD_OPTION", `bucketBytes ${bucketBytes} must be a positive integer`, {
      subject: "bucketBytes",
    });
  for (const t of tensors)
    if (!(Number.isSafeInteger(t.numel) && t.numel > 0))
      throw new UnmaskError("BAD_OPTION", `masked tensor ${t.name} has ${t.numel} entries`, {
        subject: t.name,
      });
  const order = options.readyOrder ?? backwardOrder(tensors.map((t) => t.name));
  const seen = new Set(order);
  if (order.length !== tensors.length || seen.size !== tensors.length || order.some((i) => !(i in tensors)))
    throw new UnmaskError(
      "BAD_OPTION",
      `readyOrder must list each of the ${tensors.length} tensor indices once, got [${order.join(", ")}]`,
      { subject: "readyOrder" },
    );

  const buckets: Bucket[] = [];
  const slots: BucketSlot[] = new Array(tensors.length);
  const bucketOf: number[] = new Array(tensors.length);
  let offset = 0;
  let current: Bucket | undefined;
  for (const tensorIndex of order) {
    const { name, numel } = tensors[tensorIndex];
    const elements = GRADIENT_SIGNALS * numel;
    if (!current || (current.elements + elements) * GRADIENT_ELEMENT_BYTES > bucketBytes) {
      current = { index: buckets.length, offsetElements: offset, elements: 0, slots: [] };
      buckets.push(current);
    }
    const slot: BucketSlot = { tensorIndex, name, numel, offsetElements: offset };
    current.slots.push(slot);
    current.elements += elements;
    slots[tensorIndex] = slot;
    bucketOf[tensorIndex] = current.index;
    offset += elements;
  }
  return { buckets, totalElements: offset, slots, bucketOf };
}

/**
 * Per-tensor [2, numel] views into one flat gradient buffer laid out by `plan` (host engines:
 * allocate the buffer once and hand these views to the backward as its gradient outputs).
 */
export function slotViews(plan: BucketPlan, flat: Float32Array): Float32Array[] {
  if (flat.length !== plan.totalElements)
    throw new UnmaskError(
      "BAD_SHAPE",
      `gradient buffer has ${flat.length} floats, the plan needs ${plan.totalElements}`,
      {
        subject: "gradients",
      },
    );
  return plan.slots.map((s) =>
    flat.subarray(s.offsetElements, s.offsetElements + GRADIENT_SIGNALS * s.numel),
  );
}

/** Bucket `b` of a flat buffer laid out by `plan` (a view, no copy). */
export function bucketView(plan: BucketPlan, flat: Float32Array, b: number): Float32Array {
  const bucket = plan.buckets[b];
  return flat.subarray(bucket.offsetElements, bucket.offsetElements + bucket.elements);
}
