/**
 * Node file helpers for .umask files (the "@unmask/mask-format/node" export). Everything else in
 * the package is bytes in, bytes out, and runs in browsers.
 */
import { randomBytes } from "node:crypto";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { type DecodedMask, decodeMask } from "./decode.js";
import { type EncodeOptions, encodeMask, type MaskInput } from "./encode.js";
import { MaskFormatError } from "./errors.js";

/** Reads and decodes a .umask file; error messages name the path. */
export async function readMaskFile(path: string): Promise<DecodedMask> {
  return decodeMask(await readBytes(path), { source: path });
}

/** The raw bytes of a file, with read failures as MaskFormatError FILE_ERROR. */
export async function readBytes(path: string): Promise<Uint8Array> {
  try {
    const buffer = await readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength); // a view, no copy
  } catch (cause) {
    const code = (cause as { code?: string }).code ?? "unknown";
    throw new MaskFormatError("FILE_ERROR", `${path}: cannot read (${code})`, { cause, subject: path });
  }
}

/**
 * Writes a mask atomically: encodes `mask` when it is not bytes yet, writes a temporary file next
 * to `path`, then renames it over `path`, so readers never see a partial file.
 */
export async function writeMaskFile(
  path: string,
  mask: MaskInput | Uint8Array,
  options: EncodeOptions = {},
): Promise<void> {
  const bytes = mask instanceof Uint8Array ? mask : encodeMask(mask, options);
  await writeBytesAtomic(path, bytes);
}

/** Writes `bytes` to `path` through a temporary name in the same directory and a rename. */
export async function writeBytesAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(temporary, bytes, { flush: true });
    await rename(temporary, path);
  } catch (cause) {
    await rm(temporary, { force: true });
    const code = (cause as { code?: string }).code ?? "unknown";
    throw new MaskFormatError("FILE_ERROR", `${path}: cannot write (${code})`, { cause, subject: path });
  }
}
