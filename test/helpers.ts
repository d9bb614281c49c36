/**
 * Shared pieces of the end-to-end tests: the CLI spawned the way a user runs it, small image
 * folders cut from the bundled CIFAR-10 photos, and an independent forward pass (the trainer's
 * float32 cpu engine) to check what the onnxruntime path predicts.
 */
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { preprocessImages } from "@unmask/clip";
import { repoRoot } from "@unmask/fixtures";
import { type DecodedMask, unpackBits } from "@unmask/mask-format";
import { createCpuEngine, DEFAULT_HYPER, loadModelDir } from "@unmask/trainer";

export const CLI = join(repoRoot, "packages", "cli", "bin", "unmask.js");
export const CIFAR10 = join(repoRoot, "fixtures", "cifar10", "test");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node packages/cli/bin/unmask.js ...args` in a child process and collects its output. */
export function runCli(args: string[], options: { cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs the CLI and fails with its stderr unless it exits 0. */
export async function runCliOk(args: string[]): Promise<string> {
  const result = await runCli(args);
  if (result.code !== 0) throw new Error(`unmask ${args.join(" ")} exited ${result.code}:\n${result.stderr}`);
  return result.stdout;
}

/** The last stdout line, parsed (the CLI's --json convention). */
export function lastJson<T = Record<string, unknown>>(stdout: string): T {
  const lines = stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as T;
}

const created: string[] = [];

/** A new temporary folder, removed after the test file (setup.ts) unless UNMASK_KEEP_TEMP is set. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `unmask-e2e-${prefix}-`));
  created.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  if (process.env.UNMASK_KEEP_TEMP) return;
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * Copies images [from, from + count) of every class folder of `source` (sorted by name) into
 * `target`/<class>/, making a small labelled image folder.
 */
export function imageSubset(source: string, target: string, from: number, count: number): string {
  for (const cls of readdirSync(source).sort()) {
    const files = readdirSync(join(source, cls))
      .sort()
      .slice(from, from + count);
    mkdirSync(join(target, cls), { recursive: true });
    for (const f of files) copyFileSync(join(source, cls, f), join(target, cls, f));
  }
  return target;
}

/** Every image of a labelled folder with its class, in (class, file) order. */
export function listImages(folder: string): { path: string; className: string }[] {
  return readdirSync(folder)
    .sort()
    .flatMap((cls) =>
      readdirSync(join(folder, cls))
        .sort()
        .map((f) => ({ path: join(folder, cls, f), className: cls })),
    );
}

/**
 * The trainer's float32 cpu engine on model.safetensors with `mask` applied: the student's scores
 * are set from the mask bits (kept: above the threshold; off: 0), so the student is exactly the
 * masked model, and the text features are the mask head's (L2-normalised), as infer uses them.
 */
export async function maskedCpuEngine(modelDir: string, mask: DecodedMask, maxBatch: number) {
  const model = await loadModelDir(modelDir);
  const head = mask.head;
  if (!head) throw new Error("the mask has no classifier head");
  const features = Float32Array.from(head.textFeatures);
  for (let r = 0; r < head.classNames.length; r++) {
    const row = features.subarray(r * head.dim, (r + 1) * head.dim);
    const norm = Math.hypot(...row);
    for (let i = 0; i < row.length; i++) row[i] /= norm;
  }
  const engine = await createCpuEngine(
    {
      config: model.config,
      weights: model.vision,
      maskedTensors: [...mask.tensorNames],
      textFeatures: { shape: [head.classNames.length, head.dim], data: features },
      logitScale: model.logitScale,
    },
    { maxBatch, hyper: DEFAULT_HYPER, seed: 1 },
  );
  const scores = new Map<string, Float32Array>();
  const zeros = new Map<string, Float32Array>();
  for (const t of mask.tensors) {
    const bits = unpackBits(t.bits(), t.numel);
    scores.set(
      t.name,
      Float32Array.from(bits, (b) => (b ? 2 * DEFAULT_HYPER.threshold : 0)),
    );
    zeros.set(t.name, new Float32Array(t.numel));
  }
  await engine.setState({ scores, adamM: zeros, adamV: new Map(zeros) });
  return { engine, model, head };
}

/**
 * Top-1 class indices of `images` under `mask` (its head gives the classes), computed by the
 * trainer's float32 cpu engine from model.safetensors: an implementation independent of the
 * ONNX graphs and onnxruntime that `predict` and `eval` use. Scores are set from the mask bits
 * (kept: above the threshold; off: 0), so the engine's student is exactly the masked model.
 */
export async function referencePredictions(
  modelDir: string,
  mask: DecodedMask,
  images: readonly string[],
): Promise<{ labels: number[]; probabilities: Float32Array[]; classNames: string[] }> {
  const { engine, model, head } = await maskedCpuEngine(modelDir, mask, images.length);
  try {
    const resolution = model.config.imageResolution;
    const pixels = await preprocessImages(images, resolution);
    const logits = await engine.forward(pixels, images.length);
    const classes = head.classNames.length;
    const labels = images.map((_, i) => {
      let best = 0;
      for (let c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
      return best;
    });
    // softmax of the logits (the engine's logits already carry exp(logit_scale))
    const probabilities = images.map((_, i) => {
      const row = logits.subarray(i * classes, (i + 1) * classes);
      const max = Math.max(...row);
      const exp = Float32Array.from(row, (z) => Math.exp(z - max));
      const sum = exp.reduce((a, b) => a + b, 0);
      return exp.map((e) => e / sum);
    });
    return { labels, probabilities, classNames: head.classNames };
  } finally {
    await engine.dispose();
  }
}
