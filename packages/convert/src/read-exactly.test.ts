import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readExactly } from "./read-exactly.js";

const dir = mkdtempSync(join(tmpdir(), "unmask-read-exactly-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const path = join(dir, "ten.bin");
writeFileSync(
  path,
  Uint8Array.from({ length: 10 }, (_, i) => i),
);

describe("readExactly", () => {
  it("reads the asked range, into the given buffer when it is large enough", async () => {
    const handle = await open(path, "r");
    try {
      expect([...(await readExactly(handle, 3, 4, "ZIP_TRUNCATED", path))]).toEqual([3, 4, 5, 6]);
      const into = new Uint8Array(8);
      const read = await readExactly(handle, 6, 4, "ZIP_TRUNCATED", path, into);
      expect(read.buffer).toBe(into.buffer);
      expect([...read]).toEqual([6, 7, 8, 9]);
    } finally {
      await handle.close();
    }
  });

  it("throws the caller's code, naming the file and the offsets, when the file ends first", async () => {
    const handle = await open(path, "r");
    try {
      await expect(readExactly(handle, 8, 4, "PICKLE_TRUNCATED", path)).rejects.toMatchObject({
        code: "PICKLE_TRUNCATED",
        message: `${path}: file ends at 10 while reading 4 bytes at 8`,
      });
    } finally {
      await handle.close();
    }
  });
});
