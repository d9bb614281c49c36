/**
 * PyTorch's legacy (pre-1.6, non-zip) `torch.save` format (docs/clip-formats.md 2.4):
 *
 *   pickle(magic 0x1950a86a20f9469cfc6c) pickle(1001) pickle(sys_info) pickle(object)
 *   pickle(sorted storage keys) then, per key in that order: int64 element count, raw bytes.
 *
 * The pickles are read from a growing prefix of the file (they are small; the storages after
 * them are not), and each storage's byte range is located by walking the count headers, which
 * must agree with the counts in the object pickle. Storages are then read lazily.
 */
import { open } from "node:fs/promises";
import { fail } from "./errors.js";
import { PickleDict, type PickleValue, unpickle } from "./pickle-vm.js";
import { readExactly } from "./read-exactly.js";
import { torchGlobals } from "./torch-globals.js";
import type { StorageRef } from "./torch-tensor.js";
import { MAX_PICKLE_BYTES, parseStoragePid, type TorchPickleFile } from "./torch-zip.js";

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
/** The pickles are read from a prefix that starts here and doubles until they parse. */
const FIRST_PREFIX_BYTES = 1024 * 1024;
/** Element-count headers read at once while locating storages. */
const COUNT_HEADER_BYTES = 8;

interface PendingStorage {
  ref: StorageRef & { bytes: { byteLength: number; read: StorageRef["bytes"]["read"] } };
  elementBytes: number;
  /** File offset of the first data byte, known once the count headers are walked. */
  dataOffset: number | null;
}

export async function openTorchLegacy(path: string): Promise<TorchPickleFile> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    const source = `${path} (legacy torch.save)`;
    const storages = new Map<string, PendingStorage>();
    const resolveGlobal = torchGlobals(source);

    const persistentLoad = (pidValue: PickleValue): PickleValue => {
      const pid = parseStoragePid(pidValue, source);
      let root = storages.get(pid.key);
      if (!root) {
        const byteLength = pid.numel * pid.elementBytes;
        const pending: PendingStorage = {
          elementBytes: pid.elementBytes,
          dataOffset: null,
          ref: {
            kind: "torch-storage",
            key: pid.key,
            dtype: pid.dtype,
            numel: pid.numel,
            bytes: {
              byteLength,
              read: async (offset, length, into) => {
                if (pending.dataOffset === null || offset < 0 || offset + length > byteLength)
                  fail("TORCH_BAD_TENSOR", `${path}: read outside storage ${pid.key}`, pid.key);
                return readExactly(
                  handle,
                  pending.dataOffset + offset,
                  length,
                  "PICKLE_TRUNCATED",
                  path,
                  into,
                );
              },
            },
          },
        };
        storages.set(pid.key, pending);
        root = pending;
      }
      // A view: (view_key, offset, view_size) into the root storage, in elements.
      const view = pid.viewMetadata;
      if (Array.isArray(view) && view.length === 3) {
        const [viewKey, offset, viewSize] = view as PickleValue[];
        if (
          typeof viewKey !== "string" ||
          typeof offset !== "number" ||
          typeof viewSize !== "number" ||
          !Number.isSafeInteger(offset + viewSize) ||
          offset < 0 ||
          viewSize < 0 ||
          offset + viewSize > root.ref.numel
        )
          fail("TORCH_BAD_TENSOR", `${source}: storage view of ${pid.key} is out of range`, pid.key);
        const base = root;
        const e = root.elementBytes;
        return {
          kind: "torch-storage",
          key: viewKey,
          dtype: root.ref.dtype,
          numel: viewSize,
          bytes: {
            byteLength: viewSize * e,
            read: (o: number, n: number, into?: Uint8Array) => {
              if (o < 0 || o + n > viewSize * e)
                fail("TORCH_BAD_TENSOR", `${path}: read outside storage view ${viewKey}`, viewKey);
              return base.ref.bytes.read(offset * e + o, n, into);
            },
          },
        } satisfies StorageRef as unknown as PickleValue;
      }
      return root.ref as unknown as PickleValue;
    };

    // Parse the five pickles from a prefix, growing it while a pickle runs past its end.
    let prefixBytes = Math.min(size, FIRST_PREFIX_BYTES);
    let parsed: { root: PickleValue; keys: PickleValue; littleEndian: boolean; end: number } | null = null;
    while (parsed === null) {
      const prefix = await readExactly(handle, 0, prefixBytes, "PICKLE_TRUNCATED", path);
      try {
        storages.clear();
        const magic = unpickle(prefix, { source, resolveGlobal });
        if (magic.value !== LEGACY_MAGIC)
          fail("UNKNOWN_FORMAT", `${path}: starts with a pickle but not PyTorch's legacy magic number`, path);
        const protocol = unpickle(prefix, { source, resolveGlobal }, magic.end);
        if (protocol.value !== LEGACY_PROTOCOL)
          fail(
            "UNKNOWN_FORMAT",
            `${path}: legacy protocol ${String(protocol.value)} (expected ${LEGACY_PROTOCOL})`,
            path,
          );
        const sysInfo = unpickle(prefix, { source, resolveGlobal }, protocol.end);
        const littleEndian =
          sysInfo.value instanceof PickleDict ? sysInfo.value.entries.get("little_endian") !== false : true;
        const object = unpickle(prefix, { source, resolveGlobal, persistentLoad }, sysInfo.end);
        const keys = unpickle(prefix, { source, resolveGlobal }, object.end);
        parsed = { root: object.value, keys: keys.value, littleEndian, end: keys.end };
      } catch (error) {
        const truncated = (error as { code?: string }).code === "PICKLE_TRUNCATED";
        if (!truncated || prefixBytes >= size) throw error;
        if (prefixBytes >= MAX_PICKLE_BYTES)
          fail("PICKLE_LIMIT", `${path}: legacy pickles exceed the ${MAX_PICKLE_BYTES}-byte limit`, path);
        prefixBytes = Math.min(size, prefixBytes * 2, MAX_PICKLE_BYTES);
      }
    }

    // Walk the storage records in key order: [int64 count][count x element bytes] each.
    const { keys } = parsed;
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string"))
      fail("PICKLE_MALFORMED", `${source}: storage key list is not a list of strings`, path);
    let at = parsed.end;
    for (const key of keys as string[]) {
      const storage = storages.get(key);
      if (!storage)
        fail("PICKLE_MALFORMED", `${source}: storage ${key} is written but no tensor uses it`, key);
      const header = await readExactly(handle, at, COUNT_HEADER_BYTES, "PICKLE_TRUNCATED", path);
      const count = new DataView(header.buffer).getBigInt64(0, parsed.littleEndian);
      if (count !== BigInt(storage.ref.numel))
        fail(
          "TORCH_STORAGE_SIZE",
          `${path}: storage ${key} at ${at} holds ${count} elements, its record says ${storage.ref.numel}`,
          key,
        );
      storage.dataOffset = at + COUNT_HEADER_BYTES;
      at = storage.dataOffset + storage.ref.numel * storage.elementBytes;
      if (at > size)
        fail(
          "TORCH_STORAGE_SIZE",
          `${path}: storage ${key} runs past the end of the file (${at} > ${size})`,
          key,
        );
    }
    for (const [key, storage] of storages)
      if (storage.dataOffset === null)
        fail("TORCH_STORAGE_MISSING", `${path}: storage ${key} is not in the file`, key);
    return {
      format: "torch-legacy",
      root: parsed.root,
      byteOrder: parsed.littleEndian ? "little" : "big",
      source,
      close: () => handle.close(),
    };
  } catch (error) {
    await handle.close();
    throw error;
  }
}
