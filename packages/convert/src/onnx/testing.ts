/**
 * Helpers for tests and benches: canonical model directories (model.safetensors with OpenAI names
 * + config.json) made from the Hugging Face fixture without going through convert() (random ones:
 * ../testing/random-model.ts), and the two graphs run on a fixture's inputs. Not part of the
 * package's public API.
 */
import { join } from "node:path";
import {
  type ClipConfig,
  DTYPE_BYTES,
  type DType,
  fillTemplate,
  fromFloat32,
  inferConfig,
  planFromHf,
  preprocessImages,
  SafetensorsFile,
  type TensorToWrite,
  toFloat32,
  tokenize,
} from "@unmask/clip";
import * as ort from "onnxruntime-node";
import { type WeightDtype, writeCanonicalModelDir } from "../testing/random-model.js";
import { normalizeRows } from "./parity.js";

export type { WeightDtype };

/** Inputs and PyTorch outputs of a fixture's expected.safetensors (tiny-vit-p8). */
export interface ExpectedOutputs {
  pixelValues: Float32Array;
  pixelDims: number[];
  inputIds: Int32Array;
  idsDims: number[];
  imageEmbeds: Float32Array;
  textEmbeds: Float32Array;
  logitsPerImage: Float32Array;
}

export async function readExpectedOutputs(path: string): Promise<ExpectedOutputs> {
  const file = await SafetensorsFile.open(path);
  try {
    const ids = await file.readBytes("input_ids");
    return {
      pixelValues: await file.readFloat32("pixel_values"),
      pixelDims: file.entry("pixel_values").shape,
      inputIds: new Int32Array(ids.buffer, ids.byteOffset, ids.byteLength / 4),
      idsDims: file.entry("input_ids").shape,
      imageEmbeds: await file.readFloat32("image_embeds"),
      textEmbeds: await file.readFloat32("text_embeds"),
      logitsPerImage: await file.readFloat32("logits_per_image"),
    };
  } finally {
    await file.close();
  }
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function transpose2d(bytes: Uint8Array, rows: number, cols: number, elemBytes: number): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++)
      out.set(
        bytes.subarray((r * cols + c) * elemBytes, (r * cols + c + 1) * elemBytes),
        (c * rows + r) * elemBytes,
      );
  return out;
}

function convertBytes(bytes: Uint8Array, from: DType, to: WeightDtype | undefined, name: string): Uint8Array {
  if (!to || from === to) return bytes;
  return fromFloat32(toFloat32(bytes, from, name), to);
}

/**
 * A canonical model directory from a Hugging Face CLIPModel safetensors file (the tiny fixture):
 * q/k/v rows concatenated into in_proj, projections transposed, names mapped to OpenAI's.
 * `dtype` converts every tensor (default: keep the file's dtypes).
 */
export async function canonicalFromHf(options: {
  hfSafetensorsPath: string;
  modelDir: string;
  dtype?: WeightDtype;
}): Promise<{ config: ClipConfig; safetensorsPath: string }> {
  const file = await SafetensorsFile.open(options.hfSafetensorsPath);
  try {
    const plan = planFromHf(file.tensors.keys());
    const tensors: TensorToWrite[] = [];
    const shapes = new Map<string, number[]>();
    let storedDtype: DType = "F32";
    for (const [name, p] of plan) {
      const sources = (p.op === "concat-rows" ? p.from : [p.from]).map((s) => file.entry(s));
      const first = sources[0];
      storedDtype = first.dtype;
      const shape =
        p.op === "concat-rows"
          ? [sources.reduce((n, s) => n + s.shape[0], 0), ...first.shape.slice(1)]
          : p.op === "transpose"
            ? [first.shape[1], first.shape[0]]
            : [...first.shape];
      shapes.set(name, shape);
      const dtype = options.dtype ?? first.dtype;
      tensors.push({
        name,
        dtype,
        shape,
        data: async () => {
          const parts = await Promise.all(sources.map((s) => file.readBytes(s.name)));
          const raw =
            p.op === "transpose"
              ? transpose2d(parts[0], first.shape[0], first.shape[1], DTYPE_BYTES[first.dtype])
              : concatBytes(parts);
          return convertBytes(raw, first.dtype, options.dtype, name);
        },
      });
    }
    const config = inferConfig(shapes);
    const dtype = options.dtype ?? (storedDtype === "F16" ? "F16" : "F32");
    const safetensorsPath = await writeCanonicalModelDir(options.modelDir, config, tensors, dtype);
    return { config, safetensorsPath };
  } finally {
    await file.close();
  }
}

/** Runs vision.onnx and text.onnx of `modelDir` on a fixture's inputs (onnxruntime CPU). */
export async function runTowersOn(modelDir: string, expected: ExpectedOutputs) {
  const vision = await ort.InferenceSession.create(join(modelDir, "vision.onnx"));
  const text = await ort.InferenceSession.create(join(modelDir, "text.onnx"));
  try {
    const image = await vision.run({
      pixel_values: new ort.Tensor("float32", expected.pixelValues, expected.pixelDims),
    });
    const txt = await text.run({ input_ids: new ort.Tensor("int32", expected.inputIds, expected.idsDims) });
    return {
      imageEmbeds: image.image_embeds.data as Float32Array,
      imageDims: [...image.image_embeds.dims],
      textEmbeds: txt.text_embeds.data as Float32Array,
      textDims: [...txt.text_embeds.dims],
    };
  } finally {
    await vision.release();
    await text.release();
  }
}

/**
 * Zero-shot classification with the model directory's two graphs, as the CLIP paper: one prompt
 * per class, cosine similarity of image and text embeddings, the highest wins. Returns the class
 * index per image, in input order.
 */
export async function zeroShotPredictions(options: {
  modelDir: string;
  imagePaths: readonly string[];
  classNames: readonly string[];
  template: string;
  resolution: number;
  batch?: number;
  threads?: number;
}): Promise<number[]> {
  const sessionOptions = { intraOpNumThreads: options.threads ?? 2, interOpNumThreads: 1 };
  const text = await ort.InferenceSession.create(join(options.modelDir, "text.onnx"), sessionOptions);
  const vision = await ort.InferenceSession.create(join(options.modelDir, "vision.onnx"), sessionOptions);
  try {
    const classes = options.classNames.length;
    const ids = tokenize(options.classNames.map((c) => fillTemplate(options.template, c)));
    const textOut = await text.run({
      input_ids: new ort.Tensor("int32", ids, [classes, ids.length / classes]),
    });
    const textEmbeds = textOut.text_embeds.data as Float32Array;
    const dim = textEmbeds.length / classes;
    const textUnit = normalizeRows(textEmbeds, dim);
    const R = options.resolution;
    const batch = options.batch ?? 100;
    const predictions: number[] = [];
    for (let start = 0; start < options.imagePaths.length; start += batch) {
      const paths = options.imagePaths.slice(start, start + batch);
      const pixels = await preprocessImages(paths, R);
      const out = await vision.run({
        pixel_values: new ort.Tensor("float32", pixels, [paths.length, 3, R, R]),
      });
      const imageUnit = normalizeRows(out.image_embeds.data as Float32Array, dim);
      for (let i = 0; i < paths.length; i++) {
        let bestClass = 0;
        let bestScore = -Infinity;
        for (let c = 0; c < classes; c++) {
          let s = 0;
          for (let k = 0; k < dim; k++) s += imageUnit[i * dim + k] * textUnit[c * dim + k];
          if (s > bestScore) {
            bestScore = s;
            bestClass = c;
          }
        }
        predictions.push(bestClass);
      }
    }
    return predictions;
  } finally {
    await text.release();
    await vision.release();
  }
}
