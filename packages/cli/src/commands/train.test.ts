import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { convert } from "@unmask/convert";
import { fixturePath, repoRoot } from "@unmask/fixtures";
import { decodeMask } from "@unmask/mask-format";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runProgram } from "../../test/run-program.js";
import { register } from "./train.js";

const demo = join(repoRoot, "packages", "cli", "assets", "demo", "fashion-mnist");

/** Runs `unmask train ...args` and returns what it printed on stdout. */
const run = (args: string[]) => runProgram([register], ["train", ...args]);

afterEach(() => vi.restoreAllMocks());

describe("unmask train", () => {
  it("trains the tiny model on the demo data with a file list and prints the report as JSON", async () => {
    const dir = mkdtempSync(join(tmpdir(), "unmask-cli-train-"));
    const model = join(dir, "model");
    await convert(fixturePath("tiny-vit-p8/model.jit.pt"), model, { onnx: false });
    const out = join(dir, "mask.umask");
    const stdout = await run([
      "--model",
      model,
      "--data",
      demo,
      "--train-list",
      join(demo, "fewshot-16-seed2.json"),
      "--out",
      out,
      "--epochs",
      "1",
      "--preset",
      "rmt-16shot",
      "--mask-blocks",
      "1",
      "--eval-limit",
      "20",
      "--json",
    ]);
    const report = JSON.parse(stdout.trim().split("\n").at(-1) as string);
    expect(report.train.length).toBe(160);
    expect(report.shots).toBe(16);
    expect(report.recipe).toMatchObject({ lambda: 0.3, epochs: 1, lr: 8e-5 });
    expect(report.recipe.maskedTensors).toEqual([
      "visual.conv1.weight",
      "visual.transformer.resblocks.1.attn.in_proj_weight",
      "visual.transformer.resblocks.1.attn.out_proj.weight",
    ]);
    expect(report.accuracy.testImages).toBe(20);
    const mask = decodeMask(new Uint8Array(readFileSync(out)));
    expect(mask.head?.classNames).toContain("ankle boot");
    expect(JSON.parse(readFileSync(join(dir, "mask.report.json"), "utf8")).fileListSha256).toBe(
      report.fileListSha256,
    );
  });

  it("rejects a bad option value before any work", async () => {
    await expect(run(["--model", "m", "--data", "d", "--out", "o", "--shots", "many"])).rejects.toThrow(
      /--shots must be an integer/,
    );
  });

  it("offers --precision bf16 or fp16 and nothing else", async () => {
    await expect(run(["--model", "m", "--data", "d", "--out", "o", "--precision", "fp8"])).rejects.toThrow(
      /--precision.*fp8.*bf16, fp16/s,
    );
  });

  it("refuses --gpus above 1 without the cuda engine, before any work", async () => {
    await expect(run(["--model", "m", "--data", "d", "--out", "o", "--gpus", "two"])).rejects.toThrow(
      /--gpus must be an integer/,
    );
    await expect(run(["--model", "m", "--data", "d", "--out", "o", "--gpus", "2"])).rejects.toMatchObject({
      code: "BAD_OPTION",
      subject: "gpus",
      message: expect.stringContaining("--device cuda"),
    });
  });
});
