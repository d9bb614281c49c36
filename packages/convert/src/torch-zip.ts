/**
 * PyTorch zip archives: TorchScript (`torch.jit.save`, OpenAI's release format) and `torch.save`
 * since 1.6 (docs/clip-formats.md 2.1-2.3). Reads `<archive>/data.pkl` with the safe pickle VM and
 * resolves each storage record to a lazily read zip entry, checking that the entry exists and
 * holds exactly numel x element-size bytes before any tensor is read. Nothing under `code/` is
 * ever read, let alone run.
 */
import { DTYPE_BYTES } from "@unmask/clip";
import { fail } from "./errors.js";
import { type PickleValue, unpickle } from "./pickle-vm.js";
import { isStorageTypeMarker, torchGlobals } from "./torch-globals.js";
import { STORAGE_DTYPES, type StorageBytes, type StorageRef } from "./torch-tensor.js";
import { type RangeReader, ZipArchive, type ZipEntry } from "./zip-reader.js";

/** data.pkl of OpenAI's ViT-L/14 is ~130 KB; a mask checkpoint of ViT-L packs ~40 MB into strings. */
export const MAX_PICKLE_BYTES = 512 * 1024 * 1024;

export interface TorchPickleFile {
  format: "torchscript" | "torch-zip" | "torch-legacy";
  /** The unpickled root object (a module attribute bag or a dict). */
  root: PickleValue;
  byteOrder: "little" | "big";
  /** Names the pickle in error messages. */
  source: string;
  close(): Promise<void>;
}

/** Reads the persistent id of a storage record: ('storage', torch.XStorage, key, location, numel, ...). */
export function parseStoragePid(pid: PickleValue, source: string) {
  if (!Array.isArray(pid) || pid.length < 5 || pid[0] !== "storage")
    fail("PICKLE_MALFORMED", `${source}: persistent id is not a ('storage', ...) record`, source);
  const [, type, key, location, numel] = pid as PickleValue[];
  if (!isStorageTypeMarker(type))
    fail("TORCH_UNKNOWN_STORAGE", `${source}: storage record names no known storage type`, source);
  if (typeof key !== "string" || key.length === 0 || key.length > 256)
    fail("PICKLE_MALFORMED", `${source}: storage key ${String(key)} is not a short string`, source);
  if (typeof location !== "string")
    fail("PICKLE_MALFORMED", `${source}: storage ${key} has no location string`, key);
  if (typeof numel !== "number" || !Number.isSafeInteger(numel) || numel < 0)
    fail("PICKLE_MALFORMED", `${source}: storage ${key} has a bad element count ${String(numel)}`, key);
  const dtype = STORAGE_DTYPES[type.data.storageType];
  return { key, dtype, numel, elementBytes: dtype === null ? 1 : DTYPE_BYTES[dtype], viewMetadata: pid[5] };
}

function storageFromEntry(
  archive: ZipArchive,
  entry: ZipEntry,
  pid: ReturnType<typeof parseStoragePid>,
): StorageRef {
  const expected = pid.numel * pid.elementBytes;
  if (entry.uncompressedBytes !== expected)
    fail(
      "TORCH_STORAGE_SIZE",
      `${archive.path}: storage ${entry.name} holds ${entry.uncompressedBytes} bytes, its record says ${pid.numel} x ${pid.elementBytes} = ${expected}`,
      entry.name,
    );
  const bytes: SequentialStorageBytes = {
    byteLength: expected,
    read: (offset, length, into) => archive.read(entry, offset, length, into),
    sequential: (offset, length) => archive.sequential(entry, offset, length),
  };
  return { kind: "torch-storage", key: pid.key, dtype: pid.dtype, numel: pid.numel, bytes };
}

/** Storage bytes that can also be read in consecutive pieces (stored zip entries). */
export interface SequentialStorageBytes extends StorageBytes {
  /** A piecewise reader of [byteOffset, byteOffset + byteLength), or undefined (deflated entry). */
  sequential(byteOffset: number, byteLength: number): RangeReader | undefined;
}

export function isSequential(bytes: StorageBytes): bytes is SequentialStorageBytes {
  return typeof (bytes as Partial<SequentialStorageBytes>).sequential === "function";
}

/** Opens a PyTorch zip archive and unpickles its data.pkl (storages stay on disk). */
export async function openTorchZip(path: string): Promise<TorchPickleFile> {
  const archive = await ZipArchive.open(path);
  try {
    const first = archive.entries.keys().next().value as string | undefined;
    const slash = first?.indexOf("/") ?? -1;
    if (!first || slash <= 0)
      fail("UNKNOWN_FORMAT", `${path}: zip archive has no top-level folder (not a PyTorch archive)`, path);
    const prefix = first.slice(0, slash + 1);
    const dataPkl = archive.entry(`${prefix}data.pkl`);
    if (!dataPkl)
      fail("UNKNOWN_FORMAT", `${path}: zip archive has no ${prefix}data.pkl (not a PyTorch archive)`, path);
    if (dataPkl.uncompressedBytes > MAX_PICKLE_BYTES)
      fail(
        "PICKLE_LIMIT",
        `${path}: ${dataPkl.name} is ${dataPkl.uncompressedBytes} bytes, over the ${MAX_PICKLE_BYTES}-byte limit`,
        dataPkl.name,
      );
    let byteOrder: "little" | "big" = "little"; // a missing byteorder record means little-endian
    const byteOrderEntry = archive.entry(`${prefix}byteorder`);
    if (byteOrderEntry) {
      if (byteOrderEntry.uncompressedBytes > 16)
        fail("ZIP_BAD_FORMAT", `${path}: byteorder record is too long`, path);
      const text = new TextDecoder().decode(await archive.read(byteOrderEntry)).trim();
      if (text !== "little" && text !== "big")
        fail("ZIP_BAD_FORMAT", `${path}: byteorder record says ${JSON.stringify(text)}`, path);
      byteOrder = text;
    }
    let isTorchScript = false;
    for (const name of archive.entries.keys())
      if (name.startsWith(`${prefix}code/`) || name === `${prefix}constants.pkl`) {
        isTorchScript = true;
        break;
      }
    const source = `${path}:${dataPkl.name}`;
    const storages = new Map<string, StorageRef>();
    const pickleBytes = await archive.read(dataPkl);
    const { value: root, end } = unpickle(pickleBytes, {
      source,
      resolveGlobal: torchGlobals(source),
      persistentLoad: (pidValue) => {
        const pid = parseStoragePid(pidValue, source);
        const cached = storages.get(pid.key);
        if (cached) return cached as unknown as PickleValue;
        const entry = archive.entry(`${prefix}data/${pid.key}`) ?? archive.entry(`${prefix}.data/${pid.key}`);
        if (!entry)
          fail(
            "TORCH_STORAGE_MISSING",
            `${path}: storage ${prefix}data/${pid.key} is missing from the archive`,
            pid.key,
          );
        const storage = storageFromEntry(archive, entry, pid);
        storages.set(pid.key, storage);
        return storage as unknown as PickleValue;
      },
    });
    if (end !== pickleBytes.byteLength)
      fail(
        "PICKLE_MALFORMED",
        `${source}: ${pickleBytes.byteLength - end} trailing bytes after STOP at offset ${end}`,
        source,
      );
    return {
      format: isTorchScript ? "torchscript" : "torch-zip",
      root,
      byteOrder,
      source,
      close: () => archive.close(),
    };
  } catch (error) {
    await archive.close();
    throw error;
  }
}
