import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isUnmaskError } from "@unmask/clip";
import { describe, expect, it } from "vitest";
import { ZipWriter } from "./testing/torch-writer.js";
import { ZipArchive } from "./zip-reader.js";

const dir = mkdtempSync(join(tmpdir(), "unmask-zip-"));
const payload = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

async function writeZip(
  name: string,
  entries: [string, Uint8Array, boolean?][],
  zip64 = false,
): Promise<string> {
  const path = join(dir, name);
  const handle = await open(path, "w");
  const zip = new ZipWriter(handle, { zip64 });
  for (const [entry, bytes, deflate] of entries) await zip.add(entry, bytes, { deflate });
  await zip.finish();
  await handle.close();
  return path;
}

async function codeOf(run: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await run();
  } catch (error) {
    if (isUnmaskError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe("ZipArchive", () => {
  it("reads stored entries lazily, whole and in ranges, with data aligned to 64 bytes", async () => {
    const a = payload(1000, 1);
    const b = payload(77, 2);
    const zip = await ZipArchive.open(
      await writeZip("plain.zip", [
        ["arc/a", a],
        ["arc/b", b],
      ]),
    );
    try {
      expect([...zip.entries.keys()]).toEqual(["arc/a", "arc/b"]);
      const entry = zip.entry("arc/a")!;
      expect((await zip.dataOffset(entry)) % 64).toBe(0);
      expect(await zip.read(entry)).toEqual(a);
      expect(await zip.read(entry, 100, 50)).toEqual(a.subarray(100, 150));
      expect(await zip.read(zip.entry("arc/b")!)).toEqual(b);
    } finally {
      await zip.close();
    }
  });

  it("reads ZIP64 end records and extra fields", async () => {
    const a = payload(513, 3);
    const zip = await ZipArchive.open(
      await writeZip(
        "z64.zip",
        [
          ["arc/a", a],
          ["arc/empty", new Uint8Array(0)],
        ],
        true,
      ),
    );
    try {
      expect(zip.entry("arc/a")!.uncompressedBytes).toBe(513);
      expect(await zip.read(zip.entry("arc/a")!)).toEqual(a);
      expect(await zip.read(zip.entry("arc/empty")!)).toEqual(new Uint8Array(0));
    } finally {
      await zip.close();
    }
  });

  it("inflates deflated entries and checks their CRC", async () => {
    const a = payload(5000, 4);
    const zip = await ZipArchive.open(await writeZip("deflate.zip", [["arc/a", a, true]]));
    try {
      expect(zip.entry("arc/a")!.method).toBe(8);
      expect(await zip.read(zip.entry("arc/a")!)).toEqual(a);
      expect(await zip.read(zip.entry("arc/a")!, 10, 5)).toEqual(a.subarray(10, 15));
    } finally {
      await zip.close();
    }
  });

  it("refuses a stored entry whose bytes fail the CRC-32", async () => {
    const path = await writeZip("crc.zip", [["arc/a", payload(256, 5)]]);
    const bytes = readFileSync(path);
    bytes[200] ^= 0xff; // inside the (64-byte aligned) data of the only entry
    writeFileSync(path, bytes);
    const zip = await ZipArchive.open(path);
    try {
      expect(await codeOf(() => zip.read(zip.entry("arc/a")!))).toBe("ZIP_CRC_MISMATCH");
    } finally {
      await zip.close();
    }
  });

  it("streams a stored entry in pieces, checking its CRC-32 on the last piece", async () => {
    const a = payload(10_000, 9);
    const path = await writeZip("pieces.zip", [
      ["arc/a", a],
      ["arc/z", payload(500, 10), true],
    ]);
    const readInPieces = async (zip: ZipArchive) => {
      const reader = zip.sequential(zip.entry("arc/a")!)!;
      const parts: Uint8Array[] = [];
      while (reader.remaining > 0) parts.push(Uint8Array.from(await reader.next(new Uint8Array(3000))));
      return parts;
    };
    let zip = await ZipArchive.open(path);
    try {
      const parts = await readInPieces(zip);
      expect(parts.map((p) => p.length)).toEqual([3000, 3000, 3000, 1000]);
      expect(Buffer.concat(parts)).toEqual(Buffer.from(a));
      expect(zip.sequential(zip.entry("arc/z")!)).toBeUndefined(); // deflated: read whole instead
    } finally {
      await zip.close();
    }
    const bytes = readFileSync(path);
    bytes[
      (await ZipArchive.open(path).then(async (z) => {
        const offset = await z.dataOffset(z.entry("arc/a")!);
        await z.close();
        return offset;
      })) + 5
    ] ^= 0xff; // first piece corrupted: only the last piece can tell
    writeFileSync(path, bytes);
    zip = await ZipArchive.open(path);
    try {
      const reader = zip.sequential(zip.entry("arc/a")!)!;
      for (let i = 0; i < 3; i++) await reader.next(new Uint8Array(3000));
      expect(await codeOf(() => reader.next(new Uint8Array(3000)))).toBe("ZIP_CRC_MISMATCH");
    } finally {
      await zip.close();
    }
  });

  it("throws ZIP_TRUNCATED for an archive cut at any length", async () => {
    const path = await writeZip("cut.zip", [
      ["arc/a", payload(300, 6)],
      ["arc/b", payload(40, 7)],
    ]);
    const bytes = readFileSync(path);
    const cut = join(dir, "cut-part.zip");
    for (let n = 0; n < bytes.byteLength; n += 7) {
      writeFileSync(cut, bytes.subarray(0, n));
      expect(await codeOf(() => ZipArchive.open(cut))).toBe("ZIP_TRUNCATED");
    }
  });

  it("refuses duplicate names, unknown methods and encryption", async () => {
    const dup = await writeZip("dup.zip", [
      ["arc/a", payload(4, 1)],
      ["arc/a", payload(4, 2)],
    ]);
    expect(await codeOf(() => ZipArchive.open(dup))).toBe("ZIP_BAD_FORMAT");

    const path = await writeZip("method.zip", [["arc/a", payload(4, 1)]]);
    const bytes = readFileSync(path);
    const cd = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    const bzip = Buffer.from(bytes);
    bzip.writeUInt16LE(12, cd + 10); // method 12 = bzip2
    writeFileSync(join(dir, "bzip.zip"), bzip);
    expect(await codeOf(() => ZipArchive.open(join(dir, "bzip.zip")))).toBe("ZIP_UNSUPPORTED");
    const encrypted = Buffer.from(bytes);
    encrypted.writeUInt16LE(1, cd + 8);
    writeFileSync(join(dir, "enc.zip"), encrypted);
    expect(await codeOf(() => ZipArchive.open(join(dir, "enc.zip")))).toBe("ZIP_UNSUPPORTED");
  });

  it("refuses an entry whose size reaches past the data area", async () => {
    const path = await writeZip("size.zip", [["arc/a", payload(64, 1)]]);
    const bytes = Buffer.from(readFileSync(path));
    const cd = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    bytes.writeUInt32LE(1_000_000, cd + 20);
    bytes.writeUInt32LE(1_000_000, cd + 24);
    writeFileSync(path, bytes);
    expect(await codeOf(() => ZipArchive.open(path))).toBe("ZIP_TRUNCATED");
  });
});
