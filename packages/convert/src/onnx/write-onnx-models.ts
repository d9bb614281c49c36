/**
 * writeOnnxModels: vision.onnx and text.onnx for a canonical model directory.
 *
 * By default each weight is an initializer of its canonical name whose bytes are ONNX external
 * data pointing into model.safetensors (location, offset = absolute file offset, length): the
 * graphs are a few hundred kilobytes and the weights exist once on disk. `embed: true` copies the
 * bytes into the .onnx files instead, for tools that cannot read external data (a ModelProto is
 * capped at 2 GiB by protobuf, so very large towers must stay external).
 */
import { basename, isAbsolute, join, relative, sep } from "node:path";
import { type ClipConfig, SafetensorsFile, writeFileAtomic } from "@unmask/clip";
import { UnmaskError } from "@unmask/mask-format";
import type { GraphBuilder } from "./graph-builder.js";
import { encodeModel, type ModelMessage } from "./onnx-proto.js";
import type { AttentionKernel } from "./residual-block.js";
import { buildTextGraph } from "./text-graph.js";
import { buildVisionGraph } from "./vision-graph.js";

/** ONNX IR 8 pairs with opsets 15-18; 17 is the lowest opset with LayerNormalization. */
export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;
/** protobuf refuses messages of 2 GiB or more (onnx/onnx #4394). */
export const MAX_MODEL_PROTO_BYTES = 2 ** 31 - 1;
const PRODUCER = { name: "unmask", version: "0.1.0" };

export type OnnxTower = "vision" | "text";

export const ONNX_FILE_NAMES: Record<OnnxTower, string> = { vision: "vision.onnx", text: "text.onnx" };

/** Progress of writeOnnxModels, one event per step; switch on `status`. */
export type OnnxProgress =
  | { status: "onnx-graph"; tower: OnnxTower; nodes: number; initializers: number }
  | { status: "onnx-written"; tower: OnnxTower; file: string; bytes: number; embedded: boolean }
  | { status: "onnx-skipped"; reason: string };

export interface WriteOnnxModelsOptions {
  /** The model directory; the graphs are written into it. */
  modelDir: string;
  config: ClipConfig;
  /** The canonical weights (default: modelDir/model.safetensors); must lie inside modelDir. */
  safetensorsPath?: string;
  /** Copy the weights into the .onnx files instead of referencing model.safetensors. */
  embed?: boolean;
  /** Attention ops (default "matmul": standard ops, fastest measured on onnxruntime CPU). */
  attention?: AttentionKernel;
  /** Which graphs to write (default both). */
  towers?: readonly OnnxTower[];
  onProgress?: (event: OnnxProgress) => void;
}

export interface WriteOnnxModelsResult {
  /** Written paths by tower. */
  paths: Partial<Record<OnnxTower, string>>;
}

function externalLocation(modelDir: string, safetensorsPath: string): string {
  const rel = relative(modelDir, safetensorsPath);
  if (rel === "" || isAbsolute(rel) || rel.split(sep).includes(".."))
    throw new UnmaskError(
      "ONNX_EXTERNAL_PATH",
      `${safetensorsPath}: the weights file must be inside the model directory ${modelDir} (ONNX external data is resolved relative to the .onnx file)`,
      { subject: safetensorsPath },
    );
  return rel.split(sep).join("/");
}

function modelMessage(
  graph: GraphBuilder,
  tower: OnnxTower,
  config: ClipConfig,
  weights: string,
): ModelMessage {
  return {
    irVersion: ONNX_IR_VERSION,
    opsetImport: graph.domains().map((domain) => ({ domain, version: domain === "" ? ONNX_OPSET : 1 })),
    producerName: PRODUCER.name,
    producerVersion: PRODUCER.version,
    docString: `CLIP ${tower} tower (OpenAI encode_${tower === "vision" ? "image" : "text"}), fp32 compute`,
    graph: graph.build(),
    metadataProps: [
      { key: "unmask.tower", value: tower },
      { key: "unmask.embed_dim", value: String(config.embedDim) },
      { key: "unmask.weights", value: weights },
    ],
  };
}

/**
 * Writes vision.onnx and text.onnx into `modelDir` (atomically: temporary name, then rename).
 * @throws UnmaskError ONNX_UNSUPPORTED_MODEL (not a ViT), TENSOR_NOT_FOUND / ONNX_WEIGHT_SHAPE /
 *   ONNX_WEIGHT_DTYPE (weights that do not match the config), ONNX_EXTERNAL_PATH, ONNX_TOO_LARGE.
 */
export async function writeOnnxModels(options: WriteOnnxModelsOptions): Promise<WriteOnnxModelsResult> {
  const { modelDir, config } = options;
  const safetensorsPath = options.safetensorsPath ?? join(modelDir, "model.safetensors");
  const location = externalLocation(modelDir, safetensorsPath);
  const file = await SafetensorsFile.open(safetensorsPath);
  const paths: WriteOnnxModelsResult["paths"] = {};
  try {
    for (const tower of options.towers ?? (["vision", "text"] as const)) {
      const graphOptions = {
        config,
        tensors: file.tensors,
        location,
        source: safetensorsPath,
        attention: options.attention,
      };
      const graph = tower === "vision" ? buildVisionGraph(graphOptions) : buildTextGraph(graphOptions);
      const message = modelMessage(graph, tower, config, basename(safetensorsPath));
      options.onProgress?.({
        status: "onnx-graph",
        tower,
        nodes: message.graph.node.length,
        initializers: message.graph.initializer.length,
      });
      if (options.embed) {
        const external = graph.externalInitializers();
        let total = 0;
        for (const { external: e } of external) total += e.lengthBytes;
        if (total >= MAX_MODEL_PROTO_BYTES)
          throw new UnmaskError(
            "ONNX_TOO_LARGE",
            `${ONNX_FILE_NAMES[tower]}: ${total} bytes of weights do not fit a self-contained ONNX file (protobuf caps a model at 2 GiB); write it without embedding`,
            { subject: ONNX_FILE_NAMES[tower] },
          );
        const bytes = new Map<string, Uint8Array>();
        for (const { name } of external) bytes.set(name, await file.readBytes(name));
        message.graph = graph.build(bytes);
        message.metadataProps = message.metadataProps?.filter((m) => m.key !== "unmask.weights");
      }
      const encoded = encodeModel(message);
      const path = join(modelDir, ONNX_FILE_NAMES[tower]);
      await writeFileAtomic(path, encoded);
      paths[tower] = path;
      options.onProgress?.({
        status: "onnx-written",
        tower,
        file: ONNX_FILE_NAMES[tower],
        bytes: encoded.byteLength,
        embedded: options.embed === true,
      });
    }
  } finally {
    await file.close();
  }
  return { paths };
}
