import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeSafetensors, SafetensorsFile } from "@unmask/clip";
import { fixturePath } from "@unmask/fixtures";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runProgram } from "../../test/run-program.js";
import { register as registerConvert } from "./convert.js";
import { register as registerImportMask } from "./import-mask.js";

/** Runs `unmask ...args` (convert and import-mask) and returns what it printed on stdout. */
const run = (args: string[]) => runProgram([registerConvert, registerImportMask], args);

afterEach(() => vi.restoreAllMocks());

describe("unmask convert / import-mask", () => {
  it("converts the tiny fixture and prints a JSON summary", async () => {
    const dir = mkdtempSync(join(tmpdir(), "unmask-cli-convert-"));
    const out = join(dir, "model");
    const json = JSON.parse(
      await run(["convert", fixturePath("tiny-vit-p8/model.jit.pt"), "--out", out, "--no-onnx", "--json"]),
    );
    expect(json).toMatchObject({
      outDir: out,
      sourceFormat: "torchscript",
      dtype: "F16",
      tensors: 62,
      files: ["config.json", "model.safetensors"],
      config: { visionWidth: 128, visionPatchSize: 8, embedDim: 64 },
    });
    expect(readdirSync(out).sort()).toEqual(["config.json", "model.safetensors"]);
  });

  it("refuses an unknown --dtype without writing", async () => {
    const out = join(mkdtempSync(join(tmpdir(), "unmask-cli-convert-")), "model");
    await run(["convert", fixturePath("tiny-vit-p8/model.jit.pt"), "--out", out, "--dtype", "fp8"]);
    expect(process.exitCode).toBe(1);
    process.exitCode = undefined;
    expect(existsSync(out)).toBe(false);
  });

  it("passes the reader's typed error up (main prints it and exits 2)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "unmask-cli-convert-"));
    writeFileSync(join(dir, "noise.bin"), "not a checkpoint");
    const out = join(dir, "model");
    await expect(run(["convert", join(dir, "noise.bin"), "--out", out])).rejects.toMatchObject({
      code: "UNKNOWN_FORMAT",
    });
    expect(existsSync(out)).toBe(false);
  });

  it("imports the official R-AMT checkpoint for a model directory", async () => {
    // A stand-in model directory with the masked tensors' shapes (micro-clip is not in the repo).
    const expected = await SafetensorsFile.open(fixturePath("official-rmt/expected-masks.safetensors"));
    const tensors = [...expected.tensors.values()].map((t) => ({
      name: t.name,
      dtype: "F16" as const,
      shape: t.shape,
      data: new Uint8Array(t.byteLength * 2),
    }));
    await expected.close();
    const dir = mkdtempSync(join(tmpdir(), "unmask-cli-import-"));
    mkdirSync(join(dir, "model"));
    writeFileSync(
      join(dir, "model", "model.safetensors"),
      encodeSafetensors(tensors, { model_name: "micro-clip" }),
    );
    const out = join(dir, "mask.umask");
    const json = JSON.parse(
      await run([
        "import-mask",
        fixturePath("official-rmt/model.pth.tar-30"),
        "--model",
        join(dir, "model"),
        "--out",
        out,
        "--json",
      ]),
    );
    expect(json).toMatchObject({ out, parameters: 893_952, baseModel: { name: "micro-clip" } });
    expect(json.tensors[0]).toEqual({
      name: "visual.conv1.weight",
      officialKey: "conv1.mask_real",
      shape: [192, 3, 4, 4],
    });
    expect(existsSync(out)).toBe(true);
  });
});
