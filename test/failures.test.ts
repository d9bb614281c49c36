/**
 * Failure paths, through the CLI (exit code 2 and `unmask: error CODE: message naming the file`
 * on stderr, nothing on stdout) and through the APIs (an UnmaskError with the same code):
 * corrupt checkpoints, a mask on the wrong base model, unreadable images, a damaged mask file,
 * missing data.
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsFile } from "@unmask/clip";
import { convert } from "@unmask/convert";
import { fixturePath, repoRoot } from "@unmask/fixtures";
import { createClassifier } from "@unmask/infer";
import { isUnmaskError } from "@unmask/mask-format";
import { train } from "@unmask/trainer";
import { beforeAll, describe, expect, it } from "vitest";
import { CIFAR10, imageSubset, listImages, runCli, tempDir } from "./helpers.js";

const dir = tempDir("failures");
const model = join(dir, "tiny");
const maskPath = join(dir, "tiny.umask");
const photo = listImages(CIFAR10)[0].path;

/** Asserts the CLI failed cleanly with `code`, naming `subject` in the message. */
async function expectCliError(args: string[], code: string, subject: string): Promise<string> {
  const result = await runCli(args);
  expect(result.code, result.stderr).toBe(2);
  expect(result.stdout).toBe("");
  const message = result.stderr.trim().split("\n").at(-1) ?? "";
  expect(message).toMatch(new RegExp(`^unmask: error ${code}: `));
  expect(message).toContain(subject);
  expect(result.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  return message;
}

async function rejection(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isUnmaskError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error("expected a rejection");
}

beforeAll(async () => {
  await convert(fixturePath("tiny-vit-p8/model.jit.pt"), model);
  await train({
    model,
    data: imageSubset(CIFAR10, join(dir, "train"), 0, 2),
    testData: null,
    shots: 2,
    epochs: 1,
    engine: "cpu",
    out: maskPath,
  });
});

describe("corrupt checkpoints", () => {
  it("a truncated TorchScript archive: ZIP_TRUNCATED naming the file, no output folder", async () => {
    const bad = join(dir, "truncated.pt");
    const bytes = readFileSync(fixturePath("tiny-vit-p8/model.jit.pt"));
    writeFileSync(bad, bytes.subarray(0, bytes.length >> 1));
    const out = join(dir, "out-truncated");
    await expectCliError(["convert", bad, "--out", out], "ZIP_TRUNCATED", bad);
    expect(existsSync(out)).toBe(false);
    expect(await rejection(convert(bad, out))).toMatchObject({ code: "ZIP_TRUNCATED" });
    expect(existsSync(out)).toBe(false);
  });

  it("a file that is no checkpoint at all: UNKNOWN_FORMAT", async () => {
    const bad = join(dir, "notes.pt");
    writeFileSync(bad, "these are not the weights you are looking for\n".repeat(100));
    await expectCliError(["convert", bad, "--out", join(dir, "out-notes")], "UNKNOWN_FORMAT", bad);
  });

  it("a legacy checkpoint whose tensor data is cut: a typed error, not a crash", async () => {
    const bad = join(dir, "legacy-cut.pt");
    const bytes = readFileSync(fixturePath("tiny-vit-p8/model.legacy.pt"));
    writeFileSync(bad, bytes.subarray(0, bytes.length - 4096));
    const result = await runCli(["convert", bad, "--out", join(dir, "out-legacy")]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^unmask: error [A-Z_]+: .*legacy-cut\.pt/m);
  });
});

describe("a mask on the wrong base model", () => {
  it("same shapes, other weights: FINGERPRINT_MISMATCH naming the mask", async () => {
    // A copy of the model with one weight of a masked tensor changed.
    const other = join(dir, "tiny-other");
    cpSync(model, other, { recursive: true });
    const weights = join(other, "model.safetensors");
    const file = await SafetensorsFile.open(weights);
    const entry = file.tensors.get("visual.transformer.resblocks.0.attn.in_proj_weight");
    await file.close();
    if (!entry) throw new Error("no in_proj_weight");
    const bytes = readFileSync(weights);
    bytes[entry.fileOffset + 1] ^= 0x04; // an fp16 exponent bit of the first weight
    writeFileSync(weights, bytes);

    await expectCliError(
      ["predict", photo, "--model", other, "--mask", maskPath],
      "FINGERPRINT_MISMATCH",
      "tiny.umask",
    );
    expect(await rejection(createClassifier({ model: other, mask: maskPath }))).toMatchObject({
      code: "FINGERPRINT_MISMATCH",
    });
  });

  it("another architecture (the demo's nano-clip): MASK_TENSOR_MISMATCH naming the tensor", async () => {
    const nano = join(dir, "nano");
    await convert(join(repoRoot, "packages", "cli", "assets", "demo", "nano-clip.jit.pt"), nano);
    await expectCliError(
      ["eval", "--model", nano, "--mask", maskPath, "--data", join(dir, "train")],
      "MASK_TENSOR_MISMATCH",
      "visual.",
    );
  });
});

describe("unreadable images", () => {
  it("a file that is not an image: IMAGE_DECODE_FAILED naming it", async () => {
    const bad = join(dir, "broken.png");
    writeFileSync(bad, "PNG? no.");
    await expectCliError(["predict", bad, "--model", model, "--mask", maskPath], "IMAGE_DECODE_FAILED", bad);
    const classifier = await createClassifier({ model, mask: maskPath });
    try {
      expect(await rejection(classifier.classify([photo, bad]))).toMatchObject({
        code: "IMAGE_DECODE_FAILED",
      });
    } finally {
      await classifier.dispose();
    }
  });

  it("a missing image: IMAGE_READ_FAILED naming it", async () => {
    const missing = join(dir, "no-such-photo.jpg");
    await expectCliError(
      ["predict", missing, "--model", model, "--mask", maskPath],
      "IMAGE_READ_FAILED",
      missing,
    );
  });

  it("a corrupt image in a training folder: the trainer names it", async () => {
    const data = join(dir, "train-broken");
    imageSubset(CIFAR10, data, 0, 2);
    writeFileSync(join(data, "cat", "00000-broken.jpg"), "not a jpeg");
    const out = join(dir, "never.umask");
    const result = await runCli([
      "train",
      "--model",
      model,
      "--data",
      data,
      "--shots",
      "3",
      "--epochs",
      "1",
      "--out",
      out,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^unmask: error IMAGE_[A-Z_]+: .*00000-broken\.jpg/m);
    expect(existsSync(out)).toBe(false);
  });
});

describe("damaged masks and missing inputs", () => {
  it("a truncated .umask: TRUNCATED naming the file", async () => {
    const cut = join(dir, "cut.umask");
    const bytes = readFileSync(maskPath);
    writeFileSync(cut, bytes.subarray(0, bytes.length - 7));
    await expectCliError(["inspect", cut], "TRUNCATED", cut);
    await expectCliError(["predict", photo, "--model", model, "--mask", cut], "TRUNCATED", cut);
  });

  it("a mask with a flipped payload bit: CHECKSUM_MISMATCH", async () => {
    const flipped = join(dir, "flipped.umask");
    copyFileSync(maskPath, flipped);
    const bytes = readFileSync(flipped);
    bytes[bytes.length - 1] ^= 0x01;
    writeFileSync(flipped, bytes);
    await expectCliError(["inspect", flipped], "CHECKSUM_MISMATCH", flipped);
  });

  it("training data that does not exist: DATA_NOT_FOUND", async () => {
    const missing = join(dir, "no-such-folder");
    mkdirSync(join(dir, "empty-out"), { recursive: true });
    await expectCliError(
      ["train", "--model", model, "--data", missing, "--out", join(dir, "empty-out", "m.umask")],
      "DATA_NOT_FOUND",
      missing,
    );
  });
});
