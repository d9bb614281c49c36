import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeMask, packBits } from "@unmask/mask-format";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runProgram } from "../../test/run-program.js";
import { register } from "./inspect.js";

/** Runs `unmask inspect ...args` and returns what it printed on stdout. */
const run = (args: string[]) => runProgram([register], ["inspect", ...args]);

function maskFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "unmask-inspect-"));
  const path = join(dir, "mask.umask");
  // "a": every other entry off (a bitmap is smallest); "b": all 5 kept (golomb, empty payload).
  const a = Uint8Array.from({ length: 16 }, (_, k) => k % 2);
  const bytes = encodeMask({
    baseModel: { name: "tiny", fingerprint: "ab".repeat(32) },
    tensors: [
      { name: "a", shape: [4, 4], bits: packBits(a) },
      { name: "b", shape: [5], bits: packBits(new Uint8Array(5).fill(1)) },
    ],
    recipe: { lr: 8e-5 },
    head: {
      classNames: ["cat", "dog"],
      template: "a photo of a {}.",
      textFeatures: Float32Array.of(1, 0, 0, 1),
    },
  });
  writeFileSync(path, bytes);
  return path;
}

afterEach(() => vi.restoreAllMocks());

describe("unmask inspect", () => {
  it("--json gives per-tensor and total parameters, zeros, encoding and encoded bytes", async () => {
    const path = maskFile();
    const json = JSON.parse(await run([path, "--json"]));
    expect(json.file).toBe(path);
    expect(json.baseModel).toEqual({ name: "tiny", fingerprint: "ab".repeat(32) });
    expect(
      json.tensors.map((t: Record<string, unknown>) => [t.name, t.parameters, t.zeros, t.encoding]),
    ).toEqual([
      ["a", 16, 8, "bitmap"],
      ["b", 5, 0, "golomb"],
    ]);
    expect(json.tensors[0].encodedBytes).toBe(2);
    expect(json.tensors[1].encodedBytes).toBe(0);
    expect(json.total).toMatchObject({
      parameters: 21,
      zeros: 8,
      encodedBytes: 2,
      encodings: { bitmap: 1, golomb: 1 },
    });
    expect(json.recipe).toEqual({ lr: 8e-5 });
    expect(json.metrics).toBeNull();
    expect(json.head).toMatchObject({ classes: 2, dim: 2, template: "a photo of a {}." });
  });

  it("prints a table for people", async () => {
    const text = await run([maskFile()]);
    expect(text).toMatch(/base model {3}tiny, fingerprint (ab){32}/);
    expect(text).toMatch(/21 parameters in 2 tensors, 8 masked off \(38\.095%\)/);
    expect(text).toMatch(/^a +4x4 +16 +8 +50\.000% +bitmap +2$/m);
    expect(text).toMatch(/^total +21 +8 +38\.095% +2$/m);
    expect(text).toMatch(/head {9}2 classes x 2 fp16 text features/);
  });

  it("fails with a coded error on a damaged file", async () => {
    const path = maskFile();
    writeFileSync(path, new Uint8Array(10));
    await expect(run([path])).rejects.toMatchObject({ code: "BAD_MAGIC" });
  });
});
