/**
 * convert(): any supported CLIP checkpoint -> the canonical model directory
 * (ARCHITECTURE.md, "The canonical model directory"):
 *
 *   OUT/model.safetensors  canonical OpenAI names; __metadata__: format, format_version, config
 *                          (the config.json text), source_sha256, source_format, model_name, dtype
 *   OUT/config.json        configToJson() of @unmask/clip
 *   OUT/...                whatever `afterWeights` steps add (the ONNX export plugs in there)
 *
 * Steps: start hashing the source (SHA-256, recognising OpenAI's nine releases) on a worker
 * thread, open it (headers and pickles only, so bad input fails first; the hash is cancelled),
 * stream the tensors from the source into model.safetensors through two 8 MiB staging buffers
 * (weights-writer.ts; large tensors in pieces, small ones packed; the header, which records the
 * hash, is written last), write config.json, run the after-weights steps, then rename the
 * finished temporary directory into place. Any error or abort removes the temporary directory.
 *
 * dtype: `fp16` or `fp32` casts every floating tensor. The default keeps fp16 when the source
 * stores any floating tensor in fp16 (OpenAI's releases do), else fp32; floating tensors in another
 * dtype (e.g. fp32 LayerNorm or embeddings in a mixed file) are cast to it, so one file has one dtype.
 */
import { readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type ClipConfig,
  configToJson,
  DTYPE_BYTES,
  type ModelDirConfigJson,
  shapeNumel,
} from "@unmask/clip";
import { checkOutputDir, writeDirAtomic } from "./atomic-dir.js";
import { castTensorBytes, type OutputDType, outputDtypeOf } from "./cast-dtype.js";
import { type Checkpoint, type CheckpointFormat, checkpointFilePath, openCheckpoint } from "./checkpoint.js";
import { fail } from "./errors.js";
import { OFFICIAL_RELEASES, officialReleaseFor } from "./official-models.js";
import { type OnnxExportOptions, onnxExportStep } from "./onnx/convert-step.js";
import type { OnnxProgress } from "./onnx/write-onnx-models.js";
import { sha256FileInWorker } from "./sha256-file.js";
import { writeWeightsFile } from "./weights-writer.js";

export const WEIGHTS_FILE = "model.safetensors";
export const CONFIG_FILE = "config.json";

export type ConvertProgress =
  | { status: "hashing"; bytesDone: number; bytesTotal: number }
  | {
      status: "read-header";
      format: CheckpointFormat;
      path: string;
      tensorCount: number;
    }
  | { status: "tensor"; name: string; index: number; count: number; bytesDone: number; bytesTotal: number }
  | { status: "step"; name: string }
  /** `modelName`: OpenAI's release name when the SHA-256 matches one, else the option, else null. */
  | { status: "done"; outDir: string; modelName: string | null; bytesWritten: number }
  | OnnxProgress;

/** What an after-weights step sees: the temporary directory, before it is renamed into place. */
export interface ConvertStepContext {
  /** The temporary directory (becomes `outDir`); write your files here. */
  dir: string;
  /** Absolute path of model.safetensors inside `dir`, already complete. */
  weightsPath: string;
  config: ClipConfig;
  configJson: ModelDirConfigJson;
  /** Tensor names, dtypes and shapes as written. */
  tensors: { name: string; dtype: string; shape: number[] }[];
  signal?: AbortSignal;
  onProgress?: (event: ConvertProgress) => void;
}

export interface ConvertStep {
  /** Shown in the `step` progress event. */
  name: string;
  run(context: ConvertStepContext): Promise<void>;
}

export interface ConvertOptions {
  /** Output dtype of floating tensors; default: fp16 if the source has fp16 tensors, else fp32. */
  dtype?: "fp16" | "fp32";
  /** Replace a non-empty output directory (otherwise OUTPUT_EXISTS). */
  overwrite?: boolean;
  /** Recorded as model_name when the file is not one of OpenAI's releases. */
  modelName?: string;
  /** vision.onnx + text.onnx (default: written, weights as external data); false to skip. */
  onnx?: boolean | OnnxExportOptions;
  /** Steps run on the temporary directory after the weights and config.json are written. */
  afterWeights?: ConvertStep[];
  onProgress?: (event: ConvertProgress) => void;
  signal?: AbortSignal;
}

export interface ConvertResult {
  outDir: string;
  /** OpenAI's release name, `options.modelName`, or null. */
  modelName: string | null;
  official: boolean;
  sourceSha256: string;
  sourceFormat: CheckpointFormat;
  dtype: OutputDType;
  config: ClipConfig;
  tensorCount: number;
  /** Size of model.safetensors. */
  weightsBytes: number;
  /** Files in the output directory. */
  files: string[];
}

function chooseDtype(checkpoint: Checkpoint, requested: ConvertOptions["dtype"]): OutputDType {
  if (requested === "fp16") return "F16";
  if (requested === "fp32") return "F32";
  if (requested !== undefined)
    fail("UNKNOWN_FORMAT", `dtype must be "fp16" or "fp32", got ${JSON.stringify(requested)}`, "dtype");
  return checkpoint.tensors.some((t) => t.dtype === "F16") ? "F16" : "F32";
}

function checkAbort(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) fail("ABORTED", `conversion aborted while ${what}`, what);
}

/**
 * Converts the checkpoint at `input` into the canonical model directory `outDir`.
 * @throws UnmaskError with a convert code (errors.ts) or a safetensors code from @unmask/clip.
 */
export async function convert(
  input: string,
  outDir: string,
  options: ConvertOptions = {},
): Promise<ConvertResult> {
  const { onProgress, signal } = options;
  const overwrite = options.overwrite ?? false;
  await checkOutputDir(outDir, overwrite); // fail fast, before hashing a large file

  // Hash on a worker thread, started before anything is parsed so that its start-up and the
  // whole pass overlap the parsing and the tensor copy; cancelled if anything below fails.
  const hashControl = new AbortController();
  const stopHashing = () => hashControl.abort();
  signal?.addEventListener("abort", stopHashing, { once: true });
  // Hashing events are held back until the read-header event, which they follow as before.
  let opened = false;
  let heldBack: [number, number] | undefined;
  const startHashing = (path: string) => {
    const hashing = sha256FileInWorker(path, {
      signal: hashControl.signal,
      onProgress: (bytesDone, bytesTotal) => {
        if (opened) onProgress?.({ status: "hashing", bytesDone, bytesTotal });
        else heldBack = [bytesDone, bytesTotal];
      },
    });
    hashing.catch(() => {}); // observed below; a failure before then must not be "unhandled"
    return hashing;
  };
  const hashPath = await checkpointFilePath(input);
  let hashing = startHashing(hashPath);
  let checkpoint: Checkpoint;
  try {
    // Headers and pickles only: hostile or unknown input fails before any long work.
    checkpoint = await openCheckpoint(input);
  } catch (error) {
    signal?.removeEventListener("abort", stopHashing);
    hashControl.abort();
    throw error;
  }
  if (checkpoint.path !== hashPath) hashing = startHashing(checkpoint.path); // replaced meanwhile
  try {
    onProgress?.({
      status: "read-header",
      format: checkpoint.format,
      path: checkpoint.path,
      tensorCount: checkpoint.tensors.length,
    });
    opened = true;
    if (heldBack) onProgress?.({ status: "hashing", bytesDone: heldBack[0], bytesTotal: heldBack[1] });
    const dtype = chooseDtype(checkpoint, options.dtype);
    const config = checkpoint.config;
    const identify = (sourceSha256: string) => {
      const release = officialReleaseFor(sourceSha256);
      const modelName = release?.name ?? options.modelName ?? null;
      const configJson = configToJson(config, { modelName, dtype, sourceSha256 });
      const metadata: Record<string, string> = {
        format: "unmask-clip",
        format_version: "1",
        config: JSON.stringify(configJson),
        source_sha256: sourceSha256,
        source_format: checkpoint.format,
        model_name: modelName ?? "",
        dtype,
      };
      return { sourceSha256, release, modelName, configJson, metadata };
    };
    // Header sizing: the same metadata with each model name the hash could select.
    const placeholderSha = "0".repeat(64);
    const candidateMetadata = [identify(placeholderSha).metadata];
    for (const release of OFFICIAL_RELEASES) candidateMetadata.push(identify(release.sha256).metadata);
    let identity: ReturnType<typeof identify> | undefined;
    const written = checkpoint.tensors.map((t) => ({
      name: t.name,
      dtype: outputDtypeOf(t.dtype, dtype),
      shape: t.shape,
    }));
    const bytesTotal = written.reduce((sum, t) => sum + shapeNumel(t.shape) * DTYPE_BYTES[t.dtype], 0);

    const { files, weightsBytes } = await writeDirAtomic(outDir, overwrite, async (dir) => {
      const weightsPath = join(dir, WEIGHTS_FILE);
      let index = 0;
      // Tensors that keep their dtype are read straight into the writer's staging buffers (in
      // pieces when large); a cast reads into one reused scratch buffer (allocated only if some
      // tensor is cast).
      let castScratch: Buffer | undefined;
      const castScratchBytes = () =>
        Math.max(
          0,
          ...checkpoint.tensors.filter((t, i) => t.dtype !== written[i].dtype).map((t) => t.byteLength),
        );
      await writeWeightsFile(
        weightsPath,
        checkpoint.tensors.map((t, i) => ({
          name: t.name,
          dtype: written[i].dtype,
          shape: t.shape,
          stream:
            t.dtype === written[i].dtype && t.stream
              ? () => {
                  checkAbort(signal, `reading ${t.name}`);
                  return t.stream?.();
                }
              : undefined,
          data: async (into?: Uint8Array) => {
            checkAbort(signal, `reading ${t.name}`);
            if (t.dtype === written[i].dtype) return t.read(into);
            castScratch ??= Buffer.allocUnsafeSlow(castScratchBytes());
            return castTensorBytes(
              await t.read(castScratch),
              t.dtype,
              dtype,
              `${checkpoint.path}: ${t.name}`,
            );
          },
        })),
        {
          candidateMetadata,
          finalMetadata: async () => {
            identity = identify(await hashing);
            return identity.metadata;
          },
          onProgress: (event) =>
            onProgress?.({
              status: "tensor",
              name: event.tensor,
              index: index++,
              count: written.length,
              bytesDone: event.bytesDone,
              bytesTotal,
            }),
        },
      );
      const { configJson } = identity!;
      await writeFile(join(dir, CONFIG_FILE), `${JSON.stringify(configJson, null, 2)}\n`);

      // ---- After-weights steps --------------------------------------------------------------
      // The ONNX export (vision.onnx / text.onnx with model.safetensors as external data) plugs
      // in here: it runs on the temporary directory before the rename, so a failed export leaves
      // no model directory behind. Built-in steps are appended to `steps` from their options.
      const steps: ConvertStep[] = [
        ...(options.onnx === false ? [] : [onnxExportStep(options.onnx === true ? {} : options.onnx)]),
        ...(options.afterWeights ?? []),
      ];
      for (const step of steps) {
        checkAbort(signal, `before step ${step.name}`);
        onProgress?.({ status: "step", name: step.name });
        await step.run({ dir, weightsPath, config, configJson, tensors: written, signal, onProgress });
      }
      checkAbort(signal, "finishing");
      return {
        files: (await readdir(dir)).sort(),
        weightsBytes: (await stat(weightsPath)).size,
      };
    });
    const { modelName, release, sourceSha256 } = identity!;
    onProgress?.({ status: "done", outDir, modelName, bytesWritten: weightsBytes });
    return {
      outDir,
      modelName,
      official: release !== undefined,
      sourceSha256,
      sourceFormat: checkpoint.format,
      dtype,
      config,
      tensorCount: written.length,
      weightsBytes,
      files,
    };
  } finally {
    signal?.removeEventListener("abort", stopHashing);
    hashControl.abort();
    await checkpoint.close();
  }
}
