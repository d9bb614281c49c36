import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FINGERPRINT, randomBits, rng } from "../test/helpers.js";
import { encodeMask } from "./encode.js";
import { readMaskFile, writeMaskFile } from "./node.js";

describe("node file helpers", () => {
  const input = {
    baseModel: { name: "tiny", fingerprint: FINGERPRINT },
    tensors: [{ name: "w", shape: [8, 8], bits: randomBits(64, 0.1, rng(71)) }],
  };

  it("writes atomically and reads back, naming the file in errors", async () => {
    const dir = mkdtempSync(join(tmpdir(), "umask-"));
    const path = join(dir, "mask.umask");
    await writeMaskFile(path, input);
    expect(readdirSync(dir)).toEqual(["mask.umask"]); // no temporary file left
    expect(new Uint8Array(readFileSync(path))).toEqual(encodeMask(input));
    const mask = await readMaskFile(path);
    expect([...mask.tensor("w").bits()]).toEqual([...input.tensors[0].bits]);
    expect(mask.source).toBe(path);
    await writeMaskFile(path, encodeMask(input, { encoding: "bitmap" }));
    expect((await readMaskFile(path)).tensor("w").encoding).toBe("bitmap");
  });

  it("reports missing files and unwritable paths as FILE_ERROR", async () => {
    const dir = mkdtempSync(join(tmpdir(), "umask-"));
    await expect(readMaskFile(join(dir, "missing.umask"))).rejects.toMatchObject({ code: "FILE_ERROR" });
    await expect(writeMaskFile(join(dir, "no", "such", "dir.umask"), input)).rejects.toMatchObject({
      code: "FILE_ERROR",
    });
    expect(readdirSync(dir)).toEqual([]);
  });
});
