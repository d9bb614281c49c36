/**
 * train() on several GPUs of this host, the launching side: checks that the run can be split
 * (cuda engine, options that travel as JSON), writes the options to a temporary file, starts one
 * worker per GPU (launcher.ts; each runs train-worker.ts), forwards rank 0's progress, and turns
 * rank 0's result back into a TrainResult. The workers do the training (train-rank.ts).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { UnmaskError } from "@unmask/clip";
import type { TrainProgress } from "../progress.js";
import type { TrainReport } from "../report.js";
import type { TrainOptions, TrainResult } from "../train.js";
import { launchWorkers } from "./launcher.js";
import { MAX_WORLD_SIZE } from "./rendezvous.js";

/** Options that are functions or live objects: they cannot reach a worker process. */
const LOCAL_ONLY_OPTIONS = ["engineFactory", "io", "encodeText"] as const;

/**
 * The `gpus` option, checked: an integer in 1..MAX_WORLD_SIZE; above 1 (outside a worker) the
 * run must use the cuda engine and options that travel as JSON.
 * @throws UnmaskError BAD_OPTION naming the option
 */
export function trainGpus(options: TrainOptions): number {
  const gpus = options.gpus ?? 1;
  if (!(Number.isSafeInteger(gpus) && gpus >= 1 && gpus <= MAX_WORLD_SIZE))
    throw new UnmaskError("BAD_OPTION", `gpus must be an integer in 1..${MAX_WORLD_SIZE}, not ${gpus}`, {
      subject: "gpus",
    });
  if (gpus === 1 || options.distributed) return gpus;
  const engine = options.engine ?? "cpu";
  if (engine !== "cuda")
    throw new UnmaskError(
      "BAD_OPTION",
      `gpus ${gpus} trains one worker per GPU and needs the cuda engine (--device cuda), not ${engine}`,
      { subject: "gpus" },
    );
  for (const name of LOCAL_ONLY_OPTIONS)
    if (options[name] !== undefined)
      throw new UnmaskError(
        "BAD_OPTION",
        `${name} cannot be sent to the worker processes of a ${gpus}-GPU run (options travel as JSON)`,
        { subject: name },
      );
  for (const name of ["data", "testData"] as const) {
    const data = options[name];
    if (data && typeof data === "object" && data.items.some((item) => typeof item.source !== "string"))
      throw new UnmaskError(
        "BAD_OPTION",
        `${name}: in-memory images cannot be sent to the worker processes of a ${gpus}-GPU run; give image files`,
        { subject: name },
      );
  }
  return gpus;
}

/** Rank 0's result as it crosses the IPC channel (JSON: bytes as base64). */
export interface WireTrainResult {
  report: TrainReport;
  maskBytes: string;
  masks: { name: string; shape: number[]; bits: string }[];
  maskPath: string | null;
  reportPath: string | null;
}

const base64 = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
const bytesOf = (text: string) => new Uint8Array(Buffer.from(text, "base64"));

export function resultToWire(result: TrainResult): WireTrainResult {
  return {
    report: result.report,
    maskBytes: base64(result.maskBytes),
    masks: result.masks.map((m) => ({ name: m.name, shape: m.shape, bits: base64(m.bits) })),
    maskPath: result.maskPath,
    reportPath: result.reportPath,
  };
}

export function resultFromWire(wire: WireTrainResult): TrainResult {
  return {
    report: wire.report,
    maskBytes: bytesOf(wire.maskBytes),
    masks: wire.masks.map((m) => ({ name: m.name, shape: m.shape, bits: bytesOf(m.bits) })),
    maskPath: wire.maskPath,
    reportPath: wire.reportPath,
  };
}

export interface LaunchTrainingOptions {
  /** The worker script (default: the package's train-worker.js). Tests pass one with stand-ins. */
  entry?: string;
  /** Node flags of the workers (default: this process's). */
  execArgv?: string[];
  graceMs?: number;
}

/**
 * Runs `options` on `options.gpus` workers and returns rank 0's result.
 * @throws UnmaskError BAD_OPTION, WORKER_FAILED (naming the rank and its error), INTERRUPTED
 */
export async function launchTraining(
  options: TrainOptions,
  launch: LaunchTrainingOptions = {},
): Promise<TrainResult> {
  const gpus = trainGpus(options);
  const { signal, onProgress, gpus: _gpus, distributed: _distributed, ...wire } = options;
  const dir = await mkdtemp(join(tmpdir(), "unmask-train-gpus-"));
  try {
    const optionsPath = join(dir, "options.json");
    await writeFile(optionsPath, JSON.stringify(wire));
    const { results } = await launchWorkers<TrainProgress, WireTrainResult | null>({
      gpus,
      entry: launch.entry ?? fileURLToPath(new URL("./train-worker.js", import.meta.url)),
      args: [optionsPath],
      execArgv: launch.execArgv,
      graceMs: launch.graceMs,
      signal,
      onProgress,
    });
    const rank0 = results[0];
    if (!rank0)
      throw new UnmaskError("WORKER_FAILED", "worker rank 0 finished without its result", {
        subject: "rank 0",
      });
    return resultFromWire(rank0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
