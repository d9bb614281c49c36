/**
 * Opening a canonical model directory (written by @unmask/convert): config.json, the header of
 * model.safetensors (tensors are read on demand), and vision.onnx / text.onnx with their
 * initializers matched to the safetensors tensors they read.
 *
 * The match is by byte range, not by name: an initializer whose external data is
 * (model.safetensors, offset, length) IS the tensor stored at that range. So a mask that names a
 * canonical tensor can be folded into whichever initializers read it, whatever the graph calls them.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type ClipConfig, configFromJson, SafetensorsFile, type TensorEntry } from "@unmask/clip";
import { UnmaskError } from "@unmask/mask-format";
import { type OnnxGraphSummary, type OnnxInitializer, summarizeOnnxModel } from "./onnx/onnx-model.js";

export const WEIGHTS_FILE = "model.safetensors";
export const CONFIG_FILE = "config.json";
export const VISION_ONNX = "vision.onnx";
export const TEXT_ONNX = "text.onnx";

/** One ONNX graph of the directory, held in memory (graphs are small: weights are external). */
export interface OnnxGraphFile {
  path: string;
  bytes: Uint8Array;
  summary: OnnxGraphSummary;
  /** Canonical tensor name -> initializers of this graph that read its bytes. */
  initializersByTensor: Map<string, OnnxInitializer[]>;
}

export interface ModelDir {
  dir: string;
  config: ClipConfig;
  modelName: string | null;
  /** Stored dtype of the weights ("F16" or "F32"), from config.json. */
  dtype: string;
  weights: SafetensorsFile;
  vision: OnnxGraphFile;
  /** Null when the directory has no text.onnx (image-only deployments with a mask head). */
  text: OnnxGraphFile | null;
  close(): Promise<void>;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new UnmaskError(
      "MODEL_DIR_INVALID",
      `${path}: cannot read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}); is this a model directory written by \`unmask convert\`?`,
      { cause, subject: path },
    );
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new UnmaskError("MODEL_DIR_INVALID", `${path}: not valid JSON (${(cause as Error).message})`, {
      cause,
      subject: path,
    });
  }
}

async function readGraph(
  path: string,
  weights: SafetensorsFile,
  required: boolean,
): Promise<OnnxGraphFile | null> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (cause) {
    if (!required && (cause as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new UnmaskError(
      "MODEL_DIR_INVALID",
      `${path}: cannot read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`,
      { cause, subject: path },
    );
  }
  const summary = summarizeOnnxModel(bytes, path);
  const byRange = new Map<string, TensorEntry>();
  for (const entry of weights.tensors.values()) byRange.set(`${entry.fileOffset}:${entry.byteLength}`, entry);
  const initializersByTensor = new Map<string, OnnxInitializer[]>();
  for (const init of summary.initializers) {
    const ext = init.external;
    if (!ext || ext.location.replace(/^\.\//, "") !== WEIGHTS_FILE) continue;
    const entry = byRange.get(`${ext.offsetBytes}:${ext.lengthBytes}`);
    if (!entry) continue;
    const list = initializersByTensor.get(entry.name) ?? [];
    list.push(init);
    initializersByTensor.set(entry.name, list);
  }
  return { path, bytes, summary, initializersByTensor };
}

/**
 * Opens a model directory. Reads config.json, the safetensors header and the two ONNX graphs;
 * no weight is read yet.
 * @throws UnmaskError MODEL_DIR_INVALID (missing/unreadable file), BAD_CONFIG, SAFETENSORS_*, ONNX_CORRUPT
 */
export async function openModelDir(dir: string): Promise<ModelDir> {
  const configJson = (await readJson(join(dir, CONFIG_FILE))) as Record<string, unknown>;
  const config = configFromJson(configJson, join(dir, CONFIG_FILE));
  const weights = await SafetensorsFile.open(join(dir, WEIGHTS_FILE)).catch((error: unknown) => {
    if (UnmaskError.isInstance(error) && error.code === "FILE_NOT_FOUND")
      throw new UnmaskError("MODEL_DIR_INVALID", `${dir}: no ${WEIGHTS_FILE} (${error.message})`, {
        cause: error,
        subject: join(dir, WEIGHTS_FILE),
      });
    throw error;
  });
  try {
    const vision = (await readGraph(join(dir, VISION_ONNX), weights, true)) as OnnxGraphFile;
    const text = await readGraph(join(dir, TEXT_ONNX), weights, false);
    return {
      dir,
      config,
      modelName: typeof configJson.model_name === "string" ? configJson.model_name : null,
      dtype: typeof configJson.dtype === "string" ? configJson.dtype : "F32",
      weights,
      vision,
      text,
      close: () => weights.close(),
    };
  } catch (error) {
    await weights.close();
    throw error;
  }
}
