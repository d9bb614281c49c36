/**
 * Test writers for PyTorch checkpoints, so tests and benches can make archives without Python:
 * - `PickleWriter`: emits protocol-2 pickle opcodes (also hostile ones, for refusal tests);
 * - `ZipWriter`: a streaming zip writer laid out like PyTorch's (stored entries, data aligned to
 *   64 bytes through an "FB" extra field, optional ZIP64 records);
 * - `writeTorchArchive`: a TorchScript-style or torch.save-style archive of named tensors, each
 *   tensor's bytes produced on demand so a 300 MB archive never sits in memory.
 * These write what the readers accept; they are not a full PyTorch serializer.
 */
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { crc32, deflateRawSync } from "node:zlib";
import { DTYPE_BYTES, type DType, shapeNumel } from "@unmask/clip";

const encoder = new TextEncoder();

/** Emits pickle opcodes into a growing byte list. */
export class PickleWriter {
  private readonly chunks: Uint8Array[] = [];
  private memoNext = 0;

  raw(...bytes: (number | Uint8Array)[]): this {
    for (const b of bytes) this.chunks.push(typeof b === "number" ? Uint8Array.of(b) : b);
    return this;
  }
  private u32(value: number): Uint8Array {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, value, true);
    return out;
  }
  proto(version = 2): this {
    return this.raw(0x80, version);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  mark(): this {
    return this.raw(0x28);
  }
  global(module: string, name: string): this {
    return this.raw(0x63, encoder.encode(`${module}\n${name}\n`));
  }
  str(value: string): this {
    const bytes = encoder.encode(value);
    return this.raw(0x58, this.u32(bytes.byteLength), bytes);
  }
  int(value: number | bigint): this {
    if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value < 256)
      return this.raw(0x4b, value);
    if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value < 65536)
      return this.raw(0x4d, value & 0xff, value >> 8);
    if (typeof value === "number" && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31) {
      const out = new Uint8Array(4);
      new DataView(out.buffer).setInt32(0, value, true);
      return this.raw(0x4a, out);
    }
    // LONG1: little-endian two's complement, as short as possible.
    let v = BigInt(value);
    const bytes: number[] = [];
    while (true) {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
      const sign = bytes[bytes.length - 1] & 0x80;
      if ((v === 0n && !sign) || (v === -1n && sign)) break;
    }
    return this.raw(0x8a, bytes.length, Uint8Array.from(bytes));
  }
  bool(value: boolean): this {
    return this.raw(value ? 0x88 : 0x89);
  }
  none(): this {
    return this.raw(0x4e);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  emptyList(): this {
    return this.raw(0x5d);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  appends(): this {
    return this.raw(0x65);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  build(): this {
    return this.raw(0x62);
  }
  newobj(): this {
    return this.raw(0x81);
  }
  binpersid(): this {
    return this.raw(0x51);
  }
  /** BINPUT with the next memo index; returns the index for a later `get`. */
  put(): number {
    const index = this.memoNext++;
    if (index < 256) this.raw(0x71, index);
    else this.raw(0x72, this.u32(index));
    return index;
  }
  get(index: number): this {
    return index < 256 ? this.raw(0x68, index) : this.raw(0x6a, this.u32(index));
  }
  bytes(): Uint8Array {
    const total = this.chunks.reduce((n, c) => n + c.byteLength, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }
}

const STORAGE_TYPE: Partial<Record<DType, string>> = {
  F16: "HalfStorage",
  F32: "FloatStorage",
  F64: "DoubleStorage",
  BF16: "BFloat16Storage",
  I64: "LongStorage",
  I32: "IntStorage",
  I16: "ShortStorage",
  I8: "CharStorage",
  U8: "ByteStorage",
  BOOL: "BoolStorage",
};

export interface TensorRecord {
  storageKey: string;
  dtype: DType;
  shape: number[];
  /** Default: row-major contiguous. */
  stride?: number[];
  /** In elements. Default 0. */
  storageOffset?: number;
  /** Elements in the storage. Default: the tensor's element count. */
  storageNumel?: number;
  location?: string;
}

function contiguousStride(shape: readonly number[]): number[] {
  const stride = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    stride[i] = s;
    s *= shape[i];
  }
  return stride;
}

/** Emits `_rebuild_tensor_v2(BINPERSID(('storage', torch.XStorage, key, location, numel)), ...)`. */
export function writeTensor(w: PickleWriter, t: TensorRecord): void {
  const storageType = STORAGE_TYPE[t.dtype];
  if (!storageType) throw new Error(`no storage type for ${t.dtype}`);
  w.global("torch._utils", "_rebuild_tensor_v2");
  w.mark();
  w.mark()
    .str("storage")
    .global("torch", storageType)
    .str(t.storageKey)
    .str(t.location ?? "cpu");
  w.int(t.storageNumel ?? shapeNumel(t.shape))
    .tuple()
    .binpersid();
  w.int(t.storageOffset ?? 0);
  w.mark();
  for (const d of t.shape) w.int(d);
  w.tuple().mark();
  for (const s of t.stride ?? contiguousStride(t.shape)) w.int(s);
  w.tuple().bool(false).global("collections", "OrderedDict").emptyTuple().reduce();
  w.tuple().reduce();
}

/** A torch.save(state_dict) pickle: OrderedDict of name -> tensor, with a `_metadata` BUILD. */
export function stateDictPickle(tensors: readonly (TensorRecord & { name: string })[]): Uint8Array {
  const w = new PickleWriter().proto(2);
  w.global("collections", "OrderedDict").emptyTuple().reduce();
  w.mark();
  for (const t of tensors) {
    w.str(t.name);
    writeTensor(w, t);
  }
  w.setitems();
  w.emptyDict().mark().str("_metadata").global("collections", "OrderedDict").emptyTuple().reduce().setitems();
  w.build();
  return w.stop().bytes();
}

interface ModuleNode {
  children: Map<string, ModuleNode>;
  tensors: Map<string, TensorRecord>;
}

/** A TorchScript data.pkl: nested `__torch__` module objects whose attributes are the tensors. */
export function modulePickle(tensors: readonly (TensorRecord & { name: string })[]): Uint8Array {
  const root: ModuleNode = { children: new Map(), tensors: new Map() };
  for (const t of tensors) {
    const parts = t.name.split(".");
    let node = root;
    for (const p of parts.slice(0, -1)) {
      let child = node.children.get(p);
      if (!child) {
        child = { children: new Map(), tensors: new Map() };
        node.children.set(p, child);
      }
      node = child;
    }
    node.tensors.set(parts[parts.length - 1], t);
  }
  const w = new PickleWriter().proto(2);
  let classIndex = 0;
  const emit = (node: ModuleNode, className: string) => {
    w.global(`__torch__.model.___torch_mangle_${classIndex++}`, className).emptyTuple().newobj();
    w.emptyDict().mark();
    for (const [name, t] of node.tensors) {
      w.str(name);
      writeTensor(w, t);
    }
    w.str("training").bool(false);
    for (const [name, child] of node.children) {
      w.str(name);
      emit(child, /^\d+$/.test(name) ? "ResidualAttentionBlock" : "Module");
    }
    w.setitems().build();
  };
  emit(root, "CLIP");
  return w.stop().bytes();
}

/** Bytes the "FB" extra field must add so that data starts on a 64-byte boundary. */
const DATA_ALIGNMENT = 64;

interface CentralRecord {
  name: Uint8Array;
  crc: number;
  size: number;
  compressedSize: number;
  method: 0 | 8;
  offset: number;
}

/** Writes a zip sequentially to a file handle, PyTorch style. */
export class ZipWriter {
  private offset = 0;
  private readonly records: CentralRecord[] = [];

  constructor(
    private readonly handle: FileHandle,
    private readonly options: { zip64?: boolean } = {},
  ) {}

  private async write(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.handle.write(
        bytes,
        done,
        bytes.byteLength - done,
        this.offset + done,
      );
      done += bytesWritten;
    }
    this.offset += bytes.byteLength;
  }

  /** Adds a stored (or, with `deflate`, deflated) entry; `data` may be produced on demand. */
  async add(
    name: string,
    data: Uint8Array | (() => Uint8Array),
    options: { deflate?: boolean } = {},
  ): Promise<void> {
    const bytes = typeof data === "function" ? data() : data;
    const method = options.deflate ? 8 : 0;
    const stored = options.deflate ? new Uint8Array(deflateRawSync(bytes)) : bytes;
    const nameBytes = encoder.encode(name);
    const base = this.offset + 30 + nameBytes.byteLength + 4;
    const pad = (DATA_ALIGNMENT - (base % DATA_ALIGNMENT)) % DATA_ALIGNMENT;
    const header = new Uint8Array(30 + nameBytes.byteLength + 4 + pad);
    const v = new DataView(header.buffer);
    const crc = crc32(bytes) >>> 0;
    v.setUint32(0, 0x04034b50, true);
    v.setUint16(4, 20, true);
    v.setUint16(8, method, true);
    v.setUint32(14, crc, true);
    v.setUint32(18, stored.byteLength, true);
    v.setUint32(22, bytes.byteLength, true);
    v.setUint16(26, nameBytes.byteLength, true);
    v.setUint16(28, 4 + pad, true);
    header.set(nameBytes, 30);
    v.setUint16(30 + nameBytes.byteLength, 0x4246, true); // "FB"
    v.setUint16(32 + nameBytes.byteLength, pad, true);
    header.fill(0x5a, 34 + nameBytes.byteLength); // "Z" filler
    this.records.push({
      name: nameBytes,
      crc,
      size: bytes.byteLength,
      compressedSize: stored.byteLength,
      method,
      offset: this.offset,
    });
    await this.write(header);
    await this.write(stored);
  }

  /** Writes the central directory and end records. */
  async finish(): Promise<void> {
    const zip64 = this.options.zip64 ?? false;
    const cdOffset = this.offset;
    for (const r of this.records) {
      const extraBytes = zip64 ? 4 + 24 : 0;
      const h = new Uint8Array(46 + r.name.byteLength + extraBytes);
      const v = new DataView(h.buffer);
      v.setUint32(0, 0x02014b50, true);
      v.setUint16(4, 0x031e, true);
      v.setUint16(6, zip64 ? 45 : 20, true);
      v.setUint16(10, r.method, true);
      v.setUint32(16, r.crc, true);
      v.setUint32(20, zip64 ? 0xffffffff : r.compressedSize, true);
      v.setUint32(24, zip64 ? 0xffffffff : r.size, true);
      v.setUint16(28, r.name.byteLength, true);
      v.setUint16(30, extraBytes, true);
      v.setUint32(42, zip64 ? 0xffffffff : r.offset, true);
      h.set(r.name, 46);
      if (zip64) {
        const e = 46 + r.name.byteLength;
        v.setUint16(e, 0x0001, true);
        v.setUint16(e + 2, 24, true);
        v.setBigUint64(e + 4, BigInt(r.size), true);
        v.setBigUint64(e + 12, BigInt(r.compressedSize), true);
        v.setBigUint64(e + 20, BigInt(r.offset), true);
      }
      await this.write(h);
    }
    const cdBytes = this.offset - cdOffset;
    if (zip64) {
      const eocd64Offset = this.offset;
      const rec = new Uint8Array(56 + 20);
      const v = new DataView(rec.buffer);
      v.setUint32(0, 0x06064b50, true);
      v.setBigUint64(4, 44n, true);
      v.setUint16(12, 0x031e, true);
      v.setUint16(14, 45, true);
      v.setBigUint64(24, BigInt(this.records.length), true);
      v.setBigUint64(32, BigInt(this.records.length), true);
      v.setBigUint64(40, BigInt(cdBytes), true);
      v.setBigUint64(48, BigInt(cdOffset), true);
      v.setUint32(56, 0x07064b50, true);
      v.setBigUint64(64, BigInt(eocd64Offset), true);
      v.setUint32(72, 1, true);
      await this.write(rec);
    }
    const end = new Uint8Array(22);
    const v = new DataView(end.buffer);
    v.setUint32(0, 0x06054b50, true);
    v.setUint16(8, zip64 ? 0xffff : this.records.length, true);
    v.setUint16(10, zip64 ? 0xffff : this.records.length, true);
    v.setUint32(12, zip64 ? 0xffffffff : cdBytes, true);
    v.setUint32(16, zip64 ? 0xffffffff : cdOffset, true);
    await this.write(end);
  }
}

export interface ArchiveTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Row-major little-endian bytes, or a producer called when the writer reaches this tensor. */
  data: Uint8Array | (() => Uint8Array);
}

export interface WriteTorchArchiveOptions {
  /** The top-level folder inside the zip. Default "archive". */
  archiveName?: string;
  /** "torchscript": module objects + code/ stub (like torch.jit.save); "state-dict": torch.save(sd). */
  layout: "torchscript" | "state-dict";
  tensors: readonly ArchiveTensor[];
  zip64?: boolean;
}

/** Writes a PyTorch-style zip archive, one storage per tensor, streaming tensor bytes. */
export async function writeTorchArchive(path: string, options: WriteTorchArchiveOptions): Promise<void> {
  const prefix = `${options.archiveName ?? "archive"}/`;
  const records = options.tensors.map((t, i) => ({
    name: t.name,
    storageKey: String(i),
    dtype: t.dtype,
    shape: t.shape,
    location: options.layout === "torchscript" ? "cuda:0" : "cpu",
  }));
  const pickle = options.layout === "torchscript" ? modulePickle(records) : stateDictPickle(records);
  const handle = await open(path, "w");
  try {
    const zip = new ZipWriter(handle, { zip64: options.zip64 });
    await zip.add(`${prefix}data.pkl`, pickle);
    if (options.layout === "torchscript") {
      await zip.add(`${prefix}code/__torch__/model.py`, encoder.encode("class CLIP(Module):\n  pass\n"));
      await zip.add(`${prefix}constants.pkl`, new PickleWriter().proto(2).emptyTuple().stop().bytes());
    }
    await zip.add(`${prefix}byteorder`, encoder.encode("little"));
    for (const [i, t] of options.tensors.entries()) {
      await zip.add(`${prefix}data/${i}`, () => {
        const bytes = typeof t.data === "function" ? t.data() : t.data;
        const expected = shapeNumel(t.shape) * DTYPE_BYTES[t.dtype];
        if (bytes.byteLength !== expected)
          throw new Error(`${t.name}: ${bytes.byteLength} bytes, expected ${expected}`);
        return bytes;
      });
    }
    await zip.add(`${prefix}version`, encoder.encode(options.layout === "torchscript" ? "4\n" : "3\n"));
    await zip.finish();
  } finally {
    await handle.close();
  }
}

/** Writes a zip holding `data.pkl` and raw storages as given (for hostile-input tests). */
export async function writeRawTorchZip(
  path: string,
  dataPkl: Uint8Array,
  storages: Record<string, Uint8Array> = {},
  archiveName = "archive",
): Promise<void> {
  const handle = await open(path, "w");
  try {
    const zip = new ZipWriter(handle);
    await zip.add(`${archiveName}/data.pkl`, dataPkl);
    for (const [key, bytes] of Object.entries(storages)) await zip.add(`${archiveName}/data/${key}`, bytes);
    await zip.add(`${archiveName}/version`, encoder.encode("3\n"));
    await zip.finish();
  } finally {
    await handle.close();
  }
}
