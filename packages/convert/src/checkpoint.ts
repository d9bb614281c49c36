/**
 * Opens any supported CLIP checkpoint as one list of canonical tensors that are read on demand:
 *
 * | format           | recognised by                                  | reader                 |
 * | ---------------- | ---------------------------------------------- | ---------------------- |
 * | torchscript      | zip with `<archive>/code/` (OpenAI releases)   | torch-zip + module walk |
 * | torch-zip        | zip with `<archive>/data.pkl`, no code         | torch-zip + state dict  |
 * | torch-legacy     | starts with a pickle (0x80) and legacy magic   | torch-legacy            |
 * | hf-safetensors   | safetensors with `vision_model.*` keys         | planFromHf + config.json |
 * | safetensors      | safetensors with OpenAI / open_clip keys       | renamed only            |
 *
 * A directory is read as `DIR/model.safetensors` (+ `DIR/config.json`). The preview `PYTORCH1`
 * format and the tar-era legacy format are refused with UNKNOWN_FORMAT.
 */
import { open, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  type ClipConfig,
  DTYPE_BYTES,
  type DType,
  inferConfig,
  MAX_HEADER_BYTES,
  planFromHf,
  SafetensorsFile,
  shapeNumel,
} from "@unmask/clip";
import { canonicalizeNames, selectCanonicalTensors } from "./canonical-names.js";
import { fail } from "./errors.js";
import { checkHfConfig, plannedShape, readHfConfig, transpose2d } from "./hf-layout.js";
import { extractStateDict } from "./state-dict.js";
import { openTorchLegacy } from "./torch-legacy.js";
import { isContiguous, readTensorBytes, type TensorRef } from "./torch-tensor.js";
import { isSequential, openTorchZip, type TorchPickleFile } from "./torch-zip.js";
import type { RangeReader } from "./zip-reader.js";

export type CheckpointFormat =
  | "torchscript"
  | "torch-zip"
  | "torch-legacy"
  | "hf-safetensors"
  | "safetensors";

/**
 * One canonical tensor of a checkpoint; `read` returns its row-major little-endian bytes. A
 * scratch buffer `into` may be passed: readers that can fill it do, and return a view of it.
 */
export interface CheckpointTensor {
  name: string;
  dtype: DType;
  shape: number[];
  byteLength: number;
  read(into?: Uint8Array): Promise<Uint8Array>;
  /**
   * The same bytes in consecutive pieces, into the caller's buffers, when the reader can (a
   * contiguous little-endian tensor over a stored zip entry); integrity checks that cover the
   * whole tensor (the entry's CRC-32) fail on the last piece at the latest.
   */
  stream?(): RangeReader | undefined;
}

export interface Checkpoint {
  /** The file read (for a directory: its model.safetensors). */
  path: string;
  format: CheckpointFormat;
  config: ClipConfig;
  /** In canonical order (OpenAI's registration order for ViTs). */
  tensors: CheckpointTensor[];
  close(): Promise<void>;
}

/**
 * Tensors may share storages, so their total can exceed the file; more than this factor over the
 * distinct storage bytes is an amplification attack (a few KB of pickle asking for terabytes).
 */
export const MAX_TENSOR_ALIAS_FACTOR = 2;

type Sniffed = { kind: "zip" | "legacy" | "safetensors"; path: string };

/**
 * The file `openCheckpoint(input)` reads: `input`, or a directory's model.safetensors. Never
 * throws (an unreadable input is reported by openCheckpoint); lets a caller start hashing early.
 */
export async function checkpointFilePath(input: string): Promise<string> {
  const info = await stat(input).catch(() => undefined);
  return info?.isDirectory() ? join(input, "model.safetensors") : input;
}

async function sniff(input: string): Promise<Sniffed> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(input);
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === "ENOENT";
    return fail(
      missing ? "FILE_NOT_FOUND" : "FILE_UNREADABLE",
      `${input}: cannot read (${(cause as Error).message})`,
      input,
      cause,
    );
  }
  const path = info.isDirectory() ? join(input, "model.safetensors") : input;
  const handle = await open(path, "r").catch((cause) =>
    fail(
      (cause as NodeJS.ErrnoException).code === "ENOENT" ? "FILE_NOT_FOUND" : "FILE_UNREADABLE",
      `${path}: cannot open (${(cause as Error).message})`,
      path,
      cause,
    ),
  );
  try {
    const head = new Uint8Array(512);
    const { bytesRead } = await handle.read(head, 0, 512, 0);
    const text = (a: number, b: number) => new TextDecoder("latin1").decode(head.subarray(a, b));
    if (bytesRead >= 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5))
      return { kind: "zip", path };
    if (bytesRead >= 8 && text(0, 8) === "PYTORCH1")
      fail("UNKNOWN_FORMAT", `${path}: the PYTORCH1 preview archive format is not supported`, path);
    if (bytesRead >= 2 && head[0] === 0x80 && head[1] <= 5) return { kind: "legacy", path };
    if (bytesRead >= 262 && text(257, 262) === "ustar")
      fail(
        "UNKNOWN_FORMAT",
        `${path}: the tar-era legacy PyTorch format is refused (re-save it with a current PyTorch)`,
        path,
      );
    if (bytesRead >= 9) {
      const n = new DataView(head.buffer).getBigUint64(0, true);
      if (n > 0n && n <= BigInt(MAX_HEADER_BYTES) && head[8] === 0x7b) return { kind: "safetensors", path };
    }
    return fail(
      "UNKNOWN_FORMAT",
      `${path}: not a PyTorch archive, legacy torch.save file or safetensors file`,
      path,
    );
  } finally {
    await handle.close();
  }
}

function torchCheckpoint(path: string, file: TorchPickleFile): Checkpoint {
  const raw = extractStateDict(file.root, file.source);
  const canonical = canonicalizeNames(raw, path);
  const { config, names } = selectCanonicalTensors(canonical, path);
  const selected = names.map((name) => [name, canonical.get(name)!] as [string, TensorRef]);
  let tensorBytes = 0;
  const storageBytes = new Map<unknown, number>();
  for (const [, t] of selected) {
    tensorBytes += shapeNumel(t.shape) * DTYPE_BYTES[t.dtype];
    storageBytes.set(t.storage, t.storage.bytes.byteLength);
  }
  const distinct = [...storageBytes.values()].reduce((a, b) => a + b, 0);
  if (tensorBytes > MAX_TENSOR_ALIAS_FACTOR * distinct + 1024 * 1024)
    fail(
      "TORCH_BAD_TENSOR",
      `${path}: tensors total ${tensorBytes} bytes but their storages hold only ${distinct} (over ${MAX_TENSOR_ALIAS_FACTOR}x: refusing an amplification)`,
      path,
    );
  return {
    path,
    format: file.format,
    config,
    tensors: selected.map(([name, t]) => ({
      name,
      dtype: t.dtype,
      shape: t.shape,
      byteLength: shapeNumel(t.shape) * DTYPE_BYTES[t.dtype],
      read: (into) => readTensorBytes(t, file.byteOrder, into),
      stream: () => {
        const bytes = t.storage.bytes;
        const elementBytes = DTYPE_BYTES[t.dtype];
        const numel = shapeNumel(t.shape);
        if (
          file.byteOrder !== "little" ||
          numel === 0 ||
          !isContiguous(t.shape, t.stride) ||
          !isSequential(bytes)
        )
          return undefined;
        return bytes.sequential(t.storageOffset * elementBytes, numel * elementBytes);
      },
    })),
    close: file.close,
  };
}

async function safetensorsCheckpoint(path: string): Promise<Checkpoint> {
  const file = await SafetensorsFile.open(path);
  try {
    const keys = [...file.tensors.keys()];
    const isHf = keys.some((k) => k.startsWith("vision_model.") || k.startsWith("text_model."));
    if (!isHf) {
      const canonical = canonicalizeNames(file.tensors, path);
      const { config, names } = selectCanonicalTensors(canonical, path);
      return {
        path,
        format: "safetensors",
        config,
        tensors: names.map((name) => {
          const entry = canonical.get(name)!;
          return {
            name,
            dtype: entry.dtype,
            shape: entry.shape,
            byteLength: entry.byteLength,
            read: () => file.readBytes(entry.name),
          };
        }),
        close: () => file.close(),
      };
    }
    const plan = planFromHf(keys);
    const shapeOf = (hfName: string) => file.entry(hfName).shape;
    const shapes = new Map([...plan].map(([name, p]) => [name, plannedShape(p, shapeOf, name)]));
    const config = inferConfig(shapes);
    checkHfConfig(await readHfConfig(join(dirname(path), "config.json")), config, path);
    const { names } = selectCanonicalTensors(new Map([...shapes].map(([k, s]) => [k, { shape: s }])), path);
    const tensors = names.map((name): CheckpointTensor => {
      const p = plan.get(name)!;
      const sources = p.op === "concat-rows" ? p.from : [p.from];
      const dtype = file.entry(sources[0]).dtype;
      for (const s of sources)
        if (file.entry(s).dtype !== dtype)
          fail(
            "NOT_A_CLIP_MODEL",
            `${path}: ${s} is ${file.entry(s).dtype}, unlike ${sources[0]} (${dtype})`,
            s,
          );
      const shape = shapes.get(name)!;
      const byteLength = shapeNumel(shape) * DTYPE_BYTES[dtype];
      const read = async (): Promise<Uint8Array> => {
        if (p.op === "copy") return file.readBytes(p.from);
        if (p.op === "transpose")
          return transpose2d(await file.readBytes(p.from), shape[1], shape[0], DTYPE_BYTES[dtype]);
        const out = new Uint8Array(byteLength);
        let at = 0;
        for (const s of p.from) {
          const part = await file.readBytes(s);
          out.set(part, at);
          at += part.byteLength;
        }
        return out;
      };
      return { name, dtype, shape, byteLength, read };
    });
    return { path, format: "hf-safetensors", config, tensors, close: () => file.close() };
  } catch (error) {
    await file.close();
    throw error;
  }
}

/** Opens a PyTorch file (zip archive or legacy format) down to its unpickled root object. */
export async function openTorchFile(input: string): Promise<TorchPickleFile> {
  const { kind, path } = await sniff(input);
  if (kind === "safetensors")
    fail("UNKNOWN_FORMAT", `${path}: a safetensors file, not a PyTorch checkpoint`, path);
  return kind === "zip" ? openTorchZip(path) : openTorchLegacy(path);
}

/** Opens a checkpoint of any supported format; tensors are read only when `read()` is called. */
export async function openCheckpoint(input: string): Promise<Checkpoint> {
  const { kind, path } = await sniff(input);
  if (kind === "safetensors") return safetensorsCheckpoint(path);
  const file = kind === "zip" ? await openTorchZip(path) : await openTorchLegacy(path);
  try {
    return torchCheckpoint(path, file);
  } catch (error) {
    await file.close();
    throw error;
  }
}
