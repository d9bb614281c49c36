/**
 * safetensors: u64 LE header length N, N bytes of JSON header, then the tensor bytes.
 *
 * Threat model: the file is untrusted. The header is parsed only after its length is checked
 * against MAX_HEADER_BYTES and the file size; every tensor's byte range is checked to lie inside
 * the data section, to match dtype x shape exactly, and (strict mode, as the reference reader)
 * the ranges must tile the data section with no gap or overlap.
 *
 * Reading is lazy: `openSafetensors` reads the header only; tensors are read on demand.
 */

import type { FileHandle } from "node:fs/promises";
import { open, stat } from "node:fs/promises";
import { UnmaskError } from "@unmask/mask-format";
import { writeFileAtomic } from "./atomic-file.js";
import { DTYPE_BYTES, type DType, isDType, shapeNumel, toFloat32 } from "./dtype.js";

/** The reference implementation's cap (safetensors MAX_HEADER_SIZE). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offset of the tensor's data in the file (8 + N + begin). */
  fileOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
  /** Absolute offset of the data section (8 + N). */
  dataStart: number;
}

function fail(code: string, source: string, message: string): never {
  throw new UnmaskError(code, `${source}: ${message}`, { subject: source });
}

/**
 * Parses and validates a header. `headerJson` is the N header bytes; `fileSize` the total size.
 */
export function parseSafetensorsHeader(
  headerJson: Uint8Array,
  fileSize: number,
  source: string,
): SafetensorsHeader {
  const dataStart = 8 + headerJson.byteLength;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerJson));
  } catch (cause) {
    fail("SAFETENSORS_BAD_HEADER", source, `header is not valid UTF-8 JSON (${(cause as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    fail("SAFETENSORS_BAD_HEADER", source, "header is not a JSON object");
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  const ranges: { name: string; begin: number; end: number }[] = [];
  const dataBytes = fileSize - dataStart;
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value))
        fail("SAFETENSORS_BAD_HEADER", source, "__metadata__ is not an object");
      for (const [k, v] of Object.entries(value))
        if (typeof v !== "string")
          fail("SAFETENSORS_BAD_HEADER", source, `__metadata__.${k} is not a string`);
      metadata = value as Record<string, string>;
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof entry !== "object" || entry === null)
      fail("SAFETENSORS_BAD_HEADER", source, `tensor ${name}: entry is not an object`);
    if (!isDType(entry.dtype))
      fail(
        "SAFETENSORS_BAD_DTYPE",
        source,
        `tensor ${name}: unsupported dtype ${JSON.stringify(entry.dtype)}`,
      );
    if (!Array.isArray(entry.shape))
      fail("SAFETENSORS_BAD_HEADER", source, `tensor ${name}: shape is not an array`);
    const offsets = entry.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    )
      fail(
        "SAFETENSORS_BAD_HEADER",
        source,
        `tensor ${name}: data_offsets must be two non-negative integers`,
      );
    const [begin, end] = offsets as [number, number];
    const numel = shapeNumel(entry.shape as number[], `${source}: tensor ${name}`);
    const expected = numel * DTYPE_BYTES[entry.dtype];
    if (end < begin || end - begin !== expected)
      fail(
        "SAFETENSORS_BAD_OFFSETS",
        source,
        `tensor ${name}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, dtype ${entry.dtype} x shape [${(entry.shape as number[]).join(", ")}] needs ${expected}`,
      );
    if (end > dataBytes)
      fail(
        "SAFETENSORS_TRUNCATED",
        source,
        `tensor ${name}: data_offsets end ${end} is past the data section (${dataBytes} bytes)`,
      );
    tensors.set(name, {
      name,
      dtype: entry.dtype,
      shape: [...(entry.shape as number[])],
      fileOffset: dataStart + begin,
      byteLength: expected,
    });
    ranges.push({ name, begin, end });
  }
  // Strict layout, as the reference reader: ranges tile [0, dataBytes) exactly.
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const r of ranges) {
    if (r.begin < cursor)
      fail(
        "SAFETENSORS_BAD_OFFSETS",
        source,
        `tensor ${r.name}: byte range [${r.begin}, ${r.end}) overlaps the previous tensor (ends at ${cursor})`,
      );
    if (r.begin > cursor)
      fail(
        "SAFETENSORS_BAD_OFFSETS",
        source,
        `tensor ${r.name}: gap before byte ${r.begin} (previous tensor ends at ${cursor})`,
      );
    cursor = r.end;
  }
  if (cursor !== dataBytes)
    fail(
      "SAFETENSORS_BAD_OFFSETS",
      source,
      `data section holds ${dataBytes} bytes but the tensors cover ${cursor}`,
    );
  return { tensors, metadata, dataStart };
}

function readHeaderLength(first8: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8)
    fail("SAFETENSORS_TRUNCATED", source, `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES))
    fail("SAFETENSORS_BAD_HEADER", source, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerBytes = Number(n);
  if (8 + headerBytes > fileSize)
    fail(
      "SAFETENSORS_TRUNCATED",
      source,
      `header length ${headerBytes} runs past the end of the ${fileSize}-byte file`,
    );
  return headerBytes;
}

/** Parses a whole safetensors file held in memory. Tensor views share `bytes`. */
export function parseSafetensors(
  bytes: Uint8Array,
  source = "<buffer>",
): SafetensorsHeader & { bytes: Uint8Array } {
  const n = readHeaderLength(bytes.subarray(0, 8), bytes.byteLength, source);
  return { ...parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.byteLength, source), bytes };
}

/** A safetensors file opened lazily: the header is read, tensors on demand. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly header: SafetensorsHeader,
    readonly fileSize: number,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (cause) {
      throw new UnmaskError("FILE_NOT_FOUND", `${path}: cannot open (${(cause as Error).message})`, {
        cause,
        subject: path,
      });
    }
    try {
      const { size } = await handle.stat();
      const first8 = new Uint8Array(8);
      await handle.read(first8, 0, Math.min(8, size), 0);
      const n = readHeaderLength(first8, size, path);
      const json = new Uint8Array(n);
      await handle.read(json, 0, n, 8);
      return new SafetensorsFile(path, handle, parseSafetensorsHeader(json, size, path), size);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  get tensors(): Map<string, TensorEntry> {
    return this.header.tensors;
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  entry(name: string): TensorEntry {
    const entry = this.header.tensors.get(name);
    if (!entry)
      throw new UnmaskError("TENSOR_NOT_FOUND", `${this.path}: no tensor named ${name}`, { subject: name });
    return entry;
  }

  /** Raw little-endian bytes of one tensor (a fresh, 8-byte aligned buffer). */
  async readBytes(name: string): Promise<Uint8Array> {
    const entry = this.entry(name);
    const out = new Uint8Array(entry.byteLength);
    let done = 0;
    while (done < entry.byteLength) {
      const { bytesRead } = await this.handle.read(
        out,
        done,
        entry.byteLength - done,
        entry.fileOffset + done,
      );
      if (bytesRead === 0)
        fail("SAFETENSORS_TRUNCATED", this.path, `tensor ${name}: file ended while reading`);
      done += bytesRead;
    }
    return out;
  }

  /** One floating tensor widened to float32. */
  async readFloat32(name: string): Promise<Float32Array> {
    const entry = this.entry(name);
    return toFloat32(await this.readBytes(name), entry.dtype, `${this.path}: ${name}`);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(path);
}

/** Reads every tensor of a file as float32 (for small models and tests). */
export async function readSafetensorsFloat32(path: string): Promise<{
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  metadata: Record<string, string>;
}> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const entry of file.tensors.values()) {
      if (entry.dtype.startsWith("F") || entry.dtype === "BF16")
        tensors.set(entry.name, { shape: entry.shape, data: await file.readFloat32(entry.name) });
    }
    return { tensors, metadata: file.metadata };
  } finally {
    await file.close();
  }
}

export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: number[];
  /** The bytes, or a function producing them when the writer reaches this tensor (keeps memory flat). */
  data: Uint8Array | (() => Promise<Uint8Array> | Uint8Array);
}

export interface WriteSafetensorsOptions {
  metadata?: Record<string, string>;
  /** Called after each tensor is written with bytes done and total. */
  onProgress?: (event: { tensor: string; bytesDone: number; bytesTotal: number }) => void;
}

/** Lays out a header as the reference writer does: alignment descending, then name; JSON padded to 8. */
export function layoutSafetensors(
  tensors: readonly Pick<TensorToWrite, "name" | "dtype" | "shape">[],
  metadata?: Record<string, string>,
): {
  order: number[];
  headerBytes: Uint8Array;
  offsets: [number, number][];
  totalBytes: number;
} {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === "__metadata__" || seen.has(t.name))
      throw new UnmaskError("SAFETENSORS_BAD_HEADER", `tensor name ${t.name} is reserved or repeated`, {
        subject: t.name,
      });
    seen.add(t.name);
  }
  const order = tensors
    .map((_, i) => i)
    .sort(
      (a, b) =>
        DTYPE_BYTES[tensors[b].dtype] - DTYPE_BYTES[tensors[a].dtype] ||
        (tensors[a].name < tensors[b].name ? -1 : tensors[a].name > tensors[b].name ? 1 : 0),
    );
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const offsets: [number, number][] = new Array(tensors.length);
  let cursor = 0;
  for (const i of order) {
    const t = tensors[i];
    const bytes = shapeNumel(t.shape, t.name) * DTYPE_BYTES[t.dtype];
    offsets[i] = [cursor, cursor + bytes];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [cursor, cursor + bytes] };
    cursor += bytes;
  }
  let json = JSON.stringify(header);
  const pad = (8 - ((Buffer.byteLength(json) + 8) % 8)) % 8;
  json += " ".repeat(pad);
  const headerBytes = new TextEncoder().encode(json);
  return { order, headerBytes, offsets, totalBytes: 8 + headerBytes.byteLength + cursor };
}

/** Most buffers one writev takes (POSIX guarantees IOV_MAX >= 16; Linux allows 1024). */
const WRITEV_MAX_BUFFERS = 1024;

/**
 * Writes a safetensors file atomically, checking every tensor's byte count against dtype x shape.
 * Tensors already in memory are written together (one writev per 1,024), so a file costs a
 * handful of file-system calls however many tensors it has: a caller that writes in the
 * background while its own loop seldom yields to the event loop sees it finish in a few turns.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const { order, headerBytes, offsets, totalBytes } = layoutSafetensors(tensors, options.metadata);
  await writeFileAtomic(path, async (handle) => {
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
    const dataStart = 8 + headerBytes.byteLength;
    let pending: { name: string; data: Uint8Array }[] = [];
    let position = 0; // where `pending` starts in the file
    let done = 0;
    const flush = async () => {
      await writeAll(
        handle,
        pending.map((p) => p.data),
        position,
      );
      for (const p of pending) {
        position += p.data.byteLength;
        if (p.name) {
          done += p.data.byteLength;
          options.onProgress?.({ tensor: p.name, bytesDone: done, bytesTotal: totalBytes - dataStart });
        }
      }
      pending = [];
    };
    pending.push({ name: "", data: prefix }, { name: "", data: headerBytes });
    for (const i of order) {
      const t = tensors[i];
      if (typeof t.data === "function") await flush(); // a lazy tensor: write what is held first
      const data = typeof t.data === "function" ? await t.data() : t.data;
      const [begin, end] = offsets[i];
      if (data.byteLength !== end - begin)
        throw new UnmaskError(
          "SAFETENSORS_BAD_OFFSETS",
          `${path}: tensor ${t.name} has ${data.byteLength} bytes, dtype ${t.dtype} x shape [${t.shape.join(", ")}] needs ${end - begin}`,
          { subject: t.name },
        );
      pending.push({ name: t.name, data });
      if (typeof t.data === "function" || pending.length >= WRITEV_MAX_BUFFERS) await flush();
    }
    await flush();
  });
  const { size } = await stat(path);
  if (size !== totalBytes)
    throw new UnmaskError("SAFETENSORS_BAD_OFFSETS", `${path}: wrote ${size} bytes, expected ${totalBytes}`, {
      subject: path,
    });
}

/** Serialises small tensors to an in-memory safetensors file. */
export function encodeSafetensors(
  tensors: readonly { name: string; dtype: DType; shape: number[]; data: Uint8Array }[],
  metadata?: Record<string, string>,
): Uint8Array {
  const { order, headerBytes, offsets, totalBytes } = layoutSafetensors(tensors, metadata);
  const out = new Uint8Array(totalBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  const dataStart = 8 + headerBytes.byteLength;
  for (const i of order) {
    const [begin, end] = offsets[i];
    if (tensors[i].data.byteLength !== end - begin)
      throw new UnmaskError(
        "SAFETENSORS_BAD_OFFSETS",
        `tensor ${tensors[i].name} has ${tensors[i].data.byteLength} bytes, needs ${end - begin}`,
        { subject: tensors[i].name },
      );
    out.set(tensors[i].data, dataStart + begin);
  }
  return out;
}

/** Writes every byte of `buffers` at `position`, resuming after short writes. */
async function writeAll(
  handle: import("node:fs/promises").FileHandle,
  buffers: Uint8Array[],
  position: number,
): Promise<void> {
  let rest = buffers.filter((b) => b.byteLength > 0);
  while (rest.length > 0) {
    const { bytesWritten } = await handle.writev(rest, position);
    position += bytesWritten;
    let skip = bytesWritten;
    while (rest.length > 0 && skip >= rest[0].byteLength) {
      skip -= rest[0].byteLength;
      rest = rest.slice(1);
    }
    if (skip > 0) rest[0] = rest[0].subarray(skip);
  }
}
