/**
 * A lazy zip reader for PyTorch archives (docs/clip-formats.md 2.1).
 *
 * Threat model: the archive is untrusted. Only the end-of-central-directory record and the central
 * directory are read up front (both capped); entry bytes are read on demand from the file handle,
 * so a 1.7 GB checkpoint never sits in memory. Every offset and size is checked against the file
 * size before it is used, names must be unique, stored entries must not overlap the central
 * directory, and whole-entry reads are checked against the entry's CRC-32.
 *
 * Supports stored (method 0) and deflated (method 8, via node:zlib inflateRaw) entries and ZIP64
 * (the EOCD64 record and locator, and the 0x0001 extra field). Refuses encryption, other methods
 * and multi-disk archives. Data offsets come from the *local* header (PyTorch pads its extra field
 * so that data starts on a 64-byte boundary; the central extra field differs).
 */
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { crc32, inflateRawSync } from "node:zlib";
import { fail } from "./errors.js";
import { readExactly } from "./read-exactly.js";

/** Fixed part of the end-of-central-directory record. */
const EOCD_BYTES = 22;
/** The EOCD may be followed by a comment of at most 65,535 bytes. */
const MAX_EOCD_SEARCH_BYTES = EOCD_BYTES + 0xffff;
const ZIP64_LOCATOR_BYTES = 20;
const ZIP64_EOCD_BYTES = 56;
const CENTRAL_HEADER_BYTES = 46;
const LOCAL_HEADER_BYTES = 30;
/** A CLIP archive has a few hundred entries; a million is far beyond any real checkpoint. */
export const MAX_ZIP_ENTRIES = 1_000_000;
/** Caps the one up-front allocation (ViT-L/14's central directory is ~50 KB). */
export const MAX_CENTRAL_DIRECTORY_BYTES = 256 * 1024 * 1024;
/** Deflated entries are inflated whole; cap them so a zip bomb cannot exhaust memory. */
export const MAX_INFLATED_ENTRY_BYTES = 1024 * 1024 * 1024;

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;

/** Consecutive pieces of a byte range, each read into the caller's buffer. */
export interface RangeReader {
  /** Bytes not yet read. */
  readonly remaining: number;
  /** Reads min(into.byteLength, remaining) bytes into `into` and returns that view of it. */
  next(into: Uint8Array): Promise<Uint8Array>;
}

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflated. */
  method: 0 | 8;
  compressedBytes: number;
  uncompressedBytes: number;
  crc32: number;
  localHeaderOffset: number;
}

/** Reads little-endian integers from a buffer with bounds checks that name what was read. */
class Cursor {
  private readonly view: DataView;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly source: string,
    private readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(offset: number, n: number): void {
    if (offset < 0 || offset + n > this.bytes.byteLength)
      fail(
        "ZIP_TRUNCATED",
        `${this.source}: ${this.what} is cut short (needs ${n} bytes at ${offset}, has ${this.bytes.byteLength})`,
        this.source,
      );
  }
  u16(offset: number): number {
    this.need(offset, 2);
    return this.view.getUint16(offset, true);
  }
  u32(offset: number): number {
    this.need(offset, 4);
    return this.view.getUint32(offset, true);
  }
  u64(offset: number): number {
    this.need(offset, 8);
    const value = this.view.getBigUint64(offset, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER))
      fail(
        "ZIP_BAD_FORMAT",
        `${this.source}: ${this.what} holds a 64-bit value ${value} too large`,
        this.source,
      );
    return Number(value);
  }
  slice(offset: number, n: number): Uint8Array {
    this.need(offset, n);
    return this.bytes.subarray(offset, offset + n);
  }
}

export class ZipArchive {
  private readonly dataOffsets = new Map<string, number>();

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly fileBytes: number,
    readonly entries: Map<string, ZipEntry>,
    /** Where the central directory starts: no entry data may reach past it. */
    private readonly centralDirectoryOffset: number,
  ) {}

  /** Opens an archive, reading only its end records and central directory. */
  static async open(path: string): Promise<ZipArchive> {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      const { entries, cdOffset } = await readCentralDirectory(handle, size, path);
      return new ZipArchive(path, handle, size, entries, cdOffset);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  entry(name: string): ZipEntry | undefined {
    return this.entries.get(name);
  }

  /** Absolute file offset of an entry's first data byte (from its local header). */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const cached = this.dataOffsets.get(entry.name);
    if (cached !== undefined) return cached;
    const what = `local header of ${entry.name}`;
    if (entry.localHeaderOffset + LOCAL_HEADER_BYTES > this.centralDirectoryOffset)
      fail(
        "ZIP_TRUNCATED",
        `${this.path}: ${what} at ${entry.localHeaderOffset} is past the data area`,
        entry.name,
      );
    const header = new Cursor(
      await readExactly(this.handle, entry.localHeaderOffset, LOCAL_HEADER_BYTES, "ZIP_TRUNCATED", this.path),
      this.path,
      what,
    );
    if (header.u32(0) !== SIG_LOCAL)
      fail("ZIP_BAD_FORMAT", `${this.path}: ${what} has a bad signature`, entry.name);
    const start = entry.localHeaderOffset + LOCAL_HEADER_BYTES + header.u16(26) + header.u16(28);
    if (start + entry.compressedBytes > this.centralDirectoryOffset)
      fail(
        "ZIP_TRUNCATED",
        `${this.path}: entry ${entry.name} (${entry.compressedBytes} bytes at ${start}) runs past the data area (ends at ${this.centralDirectoryOffset})`,
        entry.name,
      );
    this.dataOffsets.set(entry.name, start);
    return start;
  }

  /** Refuses a byte range that is not inside the entry's uncompressed bytes. */
  private checkRange(entry: ZipEntry, offset: number, length: number): void {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > entry.uncompressedBytes
    )
      fail(
        "ZIP_TRUNCATED",
        `${this.path}: read of ${length} bytes at ${offset} is outside entry ${entry.name} (${entry.uncompressedBytes} bytes)`,
        entry.name,
      );
  }

  /**
   * Reads `length` bytes of an entry's uncompressed content from `offset`. A read of the whole
   * entry is checked against the CRC-32; partial reads of stored entries go straight to the file.
   * `into` (optional) is a scratch buffer to read into instead of allocating one.
   */
  async read(
    entry: ZipEntry,
    offset = 0,
    length = entry.uncompressedBytes - offset,
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    this.checkRange(entry, offset, length);
    const start = await this.dataOffset(entry);
    const whole = offset === 0 && length === entry.uncompressedBytes;
    let bytes: Uint8Array;
    if (entry.method === 0) {
      bytes = await readExactly(this.handle, start + offset, length, "ZIP_TRUNCATED", this.path, into);
    } else {
      const compressed = await readExactly(
        this.handle,
        start,
        entry.compressedBytes,
        "ZIP_TRUNCATED",
        this.path,
      );
      let inflated: Uint8Array;
      try {
        const buffer = inflateRawSync(compressed, { maxOutputLength: Math.max(1, entry.uncompressedBytes) });
        inflated = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      } catch (cause) {
        fail(
          "ZIP_BAD_FORMAT",
          `${this.path}: entry ${entry.name} does not inflate (${(cause as Error).message})`,
          entry.name,
          cause,
        );
      }
      if (inflated.byteLength !== entry.uncompressedBytes)
        fail(
          "ZIP_BAD_FORMAT",
          `${this.path}: entry ${entry.name} inflates to ${inflated.byteLength} bytes, the directory says ${entry.uncompressedBytes}`,
          entry.name,
        );
      if (crc32(inflated) >>> 0 !== entry.crc32)
        fail("ZIP_CRC_MISMATCH", `${this.path}: entry ${entry.name} fails its CRC-32 check`, entry.name);
      return whole ? inflated : inflated.slice(offset, offset + length);
    }
    if (whole && crc32(bytes) >>> 0 !== entry.crc32)
      fail("ZIP_CRC_MISMATCH", `${this.path}: entry ${entry.name} fails its CRC-32 check`, entry.name);
    return bytes;
  }

  /**
   * Reads `length` bytes of a stored entry from `offset` in consecutive pieces into the caller's
   * buffers (so a large entry needs no buffer of its size). A range that is the whole entry is
   * checked against the CRC-32, computed piece by piece and compared when the last piece is read:
   * as safe as `read`, provided the caller uses no piece before the last has been read.
   * Deflated entries return undefined (they are inflated whole by `read`).
   */
  sequential(
    entry: ZipEntry,
    offset = 0,
    length = entry.uncompressedBytes - offset,
  ): RangeReader | undefined {
    if (entry.method !== 0) return undefined;
    this.checkRange(entry, offset, length);
    const whole = offset === 0 && length === entry.uncompressedBytes;
    let done = 0;
    let crc = 0;
    return {
      get remaining() {
        return length - done;
      },
      next: async (into: Uint8Array) => {
        const start = await this.dataOffset(entry);
        const n = Math.min(into.byteLength, length - done);
        const bytes = await readExactly(
          this.handle,
          start + offset + done,
          n,
          "ZIP_TRUNCATED",
          this.path,
          into,
        );
        done += n;
        if (whole) {
          crc = crc32(bytes, crc);
          if (done === length && crc >>> 0 !== entry.crc32)
            fail("ZIP_CRC_MISMATCH", `${this.path}: entry ${entry.name} fails its CRC-32 check`, entry.name);
        }
        return bytes;
      },
    };
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

async function readCentralDirectory(handle: FileHandle, fileBytes: number, path: string) {
  if (fileBytes < EOCD_BYTES)
    fail("ZIP_TRUNCATED", `${path}: ${fileBytes} bytes is too short for a zip archive`, path);
  const tailBytes = Math.min(fileBytes, MAX_EOCD_SEARCH_BYTES);
  const tailStart = fileBytes - tailBytes;
  const tail = await readExactly(handle, tailStart, tailBytes, "ZIP_TRUNCATED", path);
  const tailView = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let eocd = -1;
  for (let i = tailBytes - EOCD_BYTES; i >= 0; i--) {
    // The comment length must reach exactly to the end of the file, or this is a false match.
    if (
      tailView.getUint32(i, true) === SIG_EOCD &&
      i + EOCD_BYTES + tailView.getUint16(i + 20, true) === tailBytes
    ) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0)
    fail(
      "ZIP_TRUNCATED",
      `${path}: no end-of-central-directory record (the archive is cut short or not a zip)`,
      path,
    );
  const end = new Cursor(tail.subarray(eocd), path, "end-of-central-directory record");
  const eocdOffset = tailStart + eocd;
  let disk = end.u16(4);
  let cdDisk = end.u16(6);
  let count = end.u16(10);
  let cdBytes = end.u32(12);
  let cdOffset = end.u32(16);
  let cdLimit = eocdOffset;
  if (count === 0xffff || cdBytes === 0xffffffff || cdOffset === 0xffffffff || disk === 0xffff) {
    const locatorOffset = eocdOffset - ZIP64_LOCATOR_BYTES;
    if (locatorOffset < 0) fail("ZIP_TRUNCATED", `${path}: ZIP64 locator missing`, path);
    const locator = new Cursor(
      await readExactly(handle, locatorOffset, ZIP64_LOCATOR_BYTES, "ZIP_TRUNCATED", path),
      path,
      "ZIP64 locator",
    );
    if (locator.u32(0) !== SIG_ZIP64_LOCATOR)
      fail("ZIP_BAD_FORMAT", `${path}: ZIP64 locator has a bad signature`, path);
    const eocd64Offset = locator.u64(8);
    if (eocd64Offset + ZIP64_EOCD_BYTES > locatorOffset)
      fail("ZIP_TRUNCATED", `${path}: ZIP64 end record at ${eocd64Offset} overlaps its locator`, path);
    const eocd64 = new Cursor(
      await readExactly(handle, eocd64Offset, ZIP64_EOCD_BYTES, "ZIP_TRUNCATED", path),
      path,
      "ZIP64 end record",
    );
    if (eocd64.u32(0) !== SIG_ZIP64_EOCD)
      fail("ZIP_BAD_FORMAT", `${path}: ZIP64 end record has a bad signature`, path);
    disk = eocd64.u32(16);
    cdDisk = eocd64.u32(20);
    count = eocd64.u64(32);
    cdBytes = eocd64.u64(40);
    cdOffset = eocd64.u64(48);
    cdLimit = eocd64Offset;
  }
  if (disk !== 0 || cdDisk !== 0)
    fail("ZIP_UNSUPPORTED", `${path}: multi-disk archives are not supported`, path);
  if (count > MAX_ZIP_ENTRIES)
    fail("ZIP_BAD_FORMAT", `${path}: ${count} entries exceed the ${MAX_ZIP_ENTRIES}-entry limit`, path);
  if (cdBytes > MAX_CENTRAL_DIRECTORY_BYTES)
    fail(
      "ZIP_BAD_FORMAT",
      `${path}: central directory of ${cdBytes} bytes exceeds the ${MAX_CENTRAL_DIRECTORY_BYTES}-byte limit`,
      path,
    );
  if (cdOffset + cdBytes > cdLimit)
    fail(
      "ZIP_TRUNCATED",
      `${path}: central directory [${cdOffset}, ${cdOffset + cdBytes}) runs past its end record at ${cdLimit}`,
      path,
    );
  const cd = new Cursor(
    await readExactly(handle, cdOffset, cdBytes, "ZIP_TRUNCATED", path),
    path,
    "central directory",
  );
  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (cd.u32(at) !== SIG_CENTRAL)
      fail(
        "ZIP_BAD_FORMAT",
        `${path}: central directory entry ${i} at ${cdOffset + at} has a bad signature`,
        path,
      );
    const flags = cd.u16(at + 8);
    const method = cd.u16(at + 10);
    const crc = cd.u32(at + 16);
    let compressedBytes = cd.u32(at + 20);
    let uncompressedBytes = cd.u32(at + 24);
    const nameBytes = cd.u16(at + 28);
    const extraBytes = cd.u16(at + 30);
    const commentBytes = cd.u16(at + 32);
    const entryDisk = cd.u16(at + 34);
    let localHeaderOffset = cd.u32(at + 42);
    let name: string;
    try {
      name = decoder.decode(cd.slice(at + CENTRAL_HEADER_BYTES, nameBytes));
    } catch {
      fail("ZIP_BAD_FORMAT", `${path}: entry ${i} has a name that is not UTF-8`, path);
    }
    const extra = cd.slice(at + CENTRAL_HEADER_BYTES + nameBytes, extraBytes);
    // ZIP64 extra field (0x0001): only the fields whose 32-bit value is saturated, in this order.
    for (let e = 0; e + 4 <= extra.byteLength; ) {
      const x = new Cursor(extra, path, `extra field of ${name}`);
      const id = x.u16(e);
      const size = x.u16(e + 2);
      if (id === 0x0001) {
        let p = e + 4;
        if (uncompressedBytes === 0xffffffff) {
          uncompressedBytes = x.u64(p);
          p += 8;
        }
        if (compressedBytes === 0xffffffff) {
          compressedBytes = x.u64(p);
          p += 8;
        }
        if (localHeaderOffset === 0xffffffff) {
          localHeaderOffset = x.u64(p);
          p += 8;
        }
        if (p > e + 4 + size)
          fail("ZIP_BAD_FORMAT", `${path}: ZIP64 extra field of ${name} is too short`, name);
      }
      e += 4 + size;
    }
    if (flags & 0x1) fail("ZIP_UNSUPPORTED", `${path}: entry ${name} is encrypted`, name);
    if (method !== 0 && method !== 8)
      fail(
        "ZIP_UNSUPPORTED",
        `${path}: entry ${name} uses compression method ${method} (only stored and deflate are read)`,
        name,
      );
    if (entryDisk !== 0 && entryDisk !== 0xffff)
      fail("ZIP_UNSUPPORTED", `${path}: entry ${name} is on disk ${entryDisk}`, name);
    if (method === 0 && compressedBytes !== uncompressedBytes)
      fail(
        "ZIP_BAD_FORMAT",
        `${path}: stored entry ${name} has compressed size ${compressedBytes} != size ${uncompressedBytes}`,
        name,
      );
    if (method === 8 && uncompressedBytes > MAX_INFLATED_ENTRY_BYTES)
      fail(
        "ZIP_BAD_FORMAT",
        `${path}: deflated entry ${name} of ${uncompressedBytes} bytes exceeds the ${MAX_INFLATED_ENTRY_BYTES}-byte limit`,
        name,
      );
    if (localHeaderOffset + LOCAL_HEADER_BYTES + compressedBytes > cdOffset)
      fail(
        "ZIP_TRUNCATED",
        `${path}: entry ${name} (${compressedBytes} bytes at ${localHeaderOffset}) runs past the data area`,
        name,
      );
    if (entries.has(name)) fail("ZIP_BAD_FORMAT", `${path}: entry name ${name} appears twice`, name);
    entries.set(name, {
      name,
      method: method as 0 | 8,
      compressedBytes,
      uncompressedBytes,
      crc32: crc,
      localHeaderOffset,
    });
    at += CENTRAL_HEADER_BYTES + nameBytes + extraBytes + commentBytes;
  }
  return { entries, cdOffset };
}
