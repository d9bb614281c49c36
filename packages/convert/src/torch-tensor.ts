/**
 * PyTorch tensors inside a pickle: a tensor is a storage plus offset, size and stride
 * (docs/clip-formats.md 2.2). Storages are byte ranges of the archive (a zip entry, or a region
 * of a legacy file) and are read lazily; `readTensorBytes` returns one tensor's row-major,
 * little-endian bytes, copying only when the tensor is not contiguous or the file is big-endian.
 */
import { DTYPE_BYTES, type DType, shapeNumel } from "@unmask/clip";
import { fail } from "./errors.js";

/** Where a storage's bytes live. */
export interface StorageBytes {
  readonly byteLength: number;
  /** Reads `byteLength` bytes at `byteOffset` within the storage (into `into` when given and large enough). */
  read(byteOffset: number, byteLength: number, into?: Uint8Array): Promise<Uint8Array>;
}

export interface StorageRef {
  readonly kind: "torch-storage";
  readonly key: string;
  /** null for UntypedStorage (bytes with no element type). */
  readonly dtype: DType | null;
  /** Elements of `dtype` (bytes for an untyped storage). */
  readonly numel: number;
  readonly bytes: StorageBytes;
}

export interface TensorRef {
  readonly kind: "torch-tensor";
  readonly storage: StorageRef;
  readonly dtype: DType;
  /** In elements. */
  readonly storageOffset: number;
  readonly shape: number[];
  readonly stride: number[];
}

/** torch.<Name>Storage -> element type (docs/clip-formats.md 2.2). */
export const STORAGE_DTYPES: Readonly<Record<string, DType | null>> = {
  HalfStorage: "F16",
  FloatStorage: "F32",
  DoubleStorage: "F64",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
  UntypedStorage: null,
};

export function isTensorRef(value: unknown): value is TensorRef {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "torch-tensor";
}

export function isStorageRef(value: unknown): value is StorageRef {
  return (
    typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "torch-storage"
  );
}

function intList(value: unknown, what: string, source: string): number[] {
  if (!Array.isArray(value)) fail("TORCH_BAD_TENSOR", `${source}: tensor ${what} is not a tuple`, source);
  return (value as unknown[]).map((v) => {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
      fail(
        "TORCH_BAD_TENSOR",
        `${source}: tensor ${what} holds ${String(v)}, not a non-negative integer`,
        source,
      );
    return v as number;
  });
}

/**
 * Validates `_rebuild_tensor_v2(storage, offset, size, stride, ...)` arguments and returns a
 * tensor reference. Every element the tensor can touch must lie inside its storage.
 */
export function makeTensorRef(args: readonly unknown[], source: string): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!isStorageRef(storage))
    fail("TORCH_BAD_TENSOR", `${source}: tensor is not backed by a storage record`, source);
  if (storage.dtype === null)
    fail(
      "TORCH_UNKNOWN_STORAGE",
      `${source}: tensor over UntypedStorage ${storage.key} has no element type`,
      storage.key,
    );
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0)
    fail(
      "TORCH_BAD_TENSOR",
      `${source}: tensor over storage ${storage.key} has a bad offset ${String(offset)}`,
      storage.key,
    );
  const shape = intList(size, "size", source);
  const strides = intList(stride, "stride", source);
  if (shape.length !== strides.length)
    fail(
      "TORCH_BAD_TENSOR",
      `${source}: tensor over storage ${storage.key} has ${shape.length} sizes but ${strides.length} strides`,
      storage.key,
    );
  const numel = shapeNumel(shape, `${source}: storage ${storage.key}`);
  if (numel > 0) {
    let last = offset;
    for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * strides[i];
    if (!Number.isSafeInteger(last) || last >= storage.numel)
      fail(
        "TORCH_BAD_TENSOR",
        `${source}: tensor [${shape.join(", ")}] at offset ${offset} with stride [${strides.join(", ")}] reaches element ${last} of storage ${storage.key}, which holds ${storage.numel}`,
        storage.key,
      );
  }
  return {
    kind: "torch-tensor",
    storage,
    dtype: storage.dtype,
    storageOffset: offset,
    shape,
    stride: strides,
  };
}

/** True when the tensor's elements are consecutive in row-major order (size-1 dims ignored). */
export function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/** Reverses each element's bytes in place (big-endian archive -> little-endian). */
function swapBytes(bytes: Uint8Array, elementBytes: number): void {
  if (elementBytes === 1) return;
  for (let i = 0; i < bytes.byteLength; i += elementBytes)
    for (let a = i, b = i + elementBytes - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
}

/**
 * One tensor's bytes, row-major and little-endian. `into` is an optional scratch buffer: a
 * contiguous tensor is read straight into it (the result is then a view of `into`).
 */
export async function readTensorBytes(
  tensor: TensorRef,
  byteOrder: "little" | "big" = "little",
  into?: Uint8Array,
): Promise<Uint8Array> {
  const elementBytes = DTYPE_BYTES[tensor.dtype];
  const numel = shapeNumel(tensor.shape);
  let out: Uint8Array;
  if (numel === 0) out = new Uint8Array(0);
  else if (isContiguous(tensor.shape, tensor.stride)) {
    out = await tensor.storage.bytes.read(tensor.storageOffset * elementBytes, numel * elementBytes, into);
  } else {
    // Read the span the tensor touches once, then gather element by element in row-major order.
    let last = tensor.storageOffset;
    for (let i = 0; i < tensor.shape.length; i++) last += (tensor.shape[i] - 1) * tensor.stride[i];
    const first = tensor.storageOffset;
    const span = await tensor.storage.bytes.read(first * elementBytes, (last - first + 1) * elementBytes);
    out = new Uint8Array(numel * elementBytes);
    const rank = tensor.shape.length;
    const index = new Array<number>(rank).fill(0);
    let source = 0;
    for (let n = 0; n < numel; n++) {
      out.set(span.subarray(source * elementBytes, (source + 1) * elementBytes), n * elementBytes);
      for (let d = rank - 1; d >= 0; d--) {
        index[d]++;
        source += tensor.stride[d];
        if (index[d] < tensor.shape[d]) break;
        source -= tensor.stride[d] * tensor.shape[d];
        index[d] = 0;
      }
    }
  }
  if (byteOrder === "big") {
    swapBytes(out, elementBytes); // `out` is a fresh read (or the caller's scratch), never shared
  }
  return out;
}
