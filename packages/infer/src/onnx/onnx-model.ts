/**
 * Reading and patching an ONNX ModelProto without a protobuf library (docs/clip-formats.md 7.1).
 *
 * What inference needs from a graph is small: the initializers and where their bytes live
 * (external data: location, offset, length), and a way to point some initializers at another
 * "file". That second part is how a mask is folded in without rewriting anything on disk: the
 * masked initializers are redirected to a virtual file whose bytes (W' = M * W) are handed to
 * onnxruntime in memory through the `externalData` session option.
 *
 * Field numbers (onnx.proto, proto2): ModelProto.graph = 7; GraphProto.initializer = 5,
 * input = 11, output = 12; TensorProto.dims = 1, data_type = 2, name = 8, raw_data = 9,
 * external_data = 13 (StringStringEntryProto key = 1, value = 2), data_location = 14 (EXTERNAL = 1).
 */
import { UnmaskError } from "@unmask/mask-format";
import {
  decodeString,
  type ProtoField,
  ProtoWriter,
  readFields,
  readRepeatedVarints,
  WIRE_LEN,
  WIRE_VARINT,
} from "./protobuf.js";

const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
const TENSOR_DIMS = 1;
const TENSOR_DATA_TYPE = 2;
const TENSOR_NAME = 8;
const TENSOR_RAW_DATA = 9;
const TENSOR_EXTERNAL_DATA = 13;
const TENSOR_DATA_LOCATION = 14;
const DATA_LOCATION_EXTERNAL = 1;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;
const VALUE_INFO_NAME = 1;

/** Where an initializer's bytes live when they are external. */
export interface ExternalDataRef {
  location: string;
  offsetBytes: number;
  /** Undefined when the file omits it (meaning: to the end of the file). */
  lengthBytes: number | undefined;
}

export interface OnnxInitializer {
  name: string;
  /** ONNX TensorProto.DataType (FLOAT 1, FLOAT16 10, BFLOAT16 16, INT64 7, ...). */
  dataType: number;
  dims: number[];
  external: ExternalDataRef | null;
}

export interface OnnxGraphSummary {
  initializers: OnnxInitializer[];
  inputNames: string[];
  outputNames: string[];
}

function graphField(model: Uint8Array, source: string): { fields: ProtoField[]; graph: ProtoField } {
  const fields = readFields(model, source);
  const graph = fields.find((f) => f.fieldNumber === MODEL_GRAPH && f.wireType === WIRE_LEN);
  if (!graph) throw new UnmaskError("ONNX_CORRUPT", `${source}: no graph in the model`, { subject: source });
  return { fields, graph };
}

function parseExternalData(fields: ProtoField[], tensorName: string, source: string): ExternalDataRef | null {
  const location = fields.find((f) => f.fieldNumber === TENSOR_DATA_LOCATION && f.wireType === WIRE_VARINT);
  if (location?.value !== DATA_LOCATION_EXTERNAL) return null;
  const entries = new Map<string, string>();
  for (const f of fields) {
    if (f.fieldNumber !== TENSOR_EXTERNAL_DATA || f.wireType !== WIRE_LEN) continue;
    const entry = readFields(f.payload, source);
    const key = entry.find((e) => e.fieldNumber === ENTRY_KEY);
    const value = entry.find((e) => e.fieldNumber === ENTRY_VALUE);
    if (key && value) entries.set(decodeString(key.payload), decodeString(value.payload));
  }
  const file = entries.get("location");
  if (file === undefined)
    throw new UnmaskError(
      "ONNX_CORRUPT",
      `${source}: initializer ${tensorName} is external but has no location`,
      {
        subject: tensorName,
      },
    );
  const integer = (key: string): number | undefined => {
    const text = entries.get(key);
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n))
      throw new UnmaskError(
        "ONNX_CORRUPT",
        `${source}: initializer ${tensorName} has external_data ${key}=${JSON.stringify(text)}, not a byte count`,
        { subject: tensorName },
      );
    return n;
  };
  return { location: file, offsetBytes: integer("offset") ?? 0, lengthBytes: integer("length") };
}

function parseInitializer(payload: Uint8Array, source: string): OnnxInitializer {
  const fields = readFields(payload, source);
  const nameField = fields.find((f) => f.fieldNumber === TENSOR_NAME && f.wireType === WIRE_LEN);
  const name = nameField ? decodeString(nameField.payload) : "";
  const dataType =
    fields.find((f) => f.fieldNumber === TENSOR_DATA_TYPE && f.wireType === WIRE_VARINT)?.value ?? 0;
  return {
    name,
    dataType,
    dims: readRepeatedVarints(fields, TENSOR_DIMS, source),
    external: parseExternalData(fields, name, source),
  };
}

/** Initializers, graph input and output names of a serialized ModelProto. */
export function summarizeOnnxModel(model: Uint8Array, source = "<onnx>"): OnnxGraphSummary {
  const { graph } = graphField(model, source);
  const initializers: OnnxInitializer[] = [];
  const inputNames: string[] = [];
  const outputNames: string[] = [];
  for (const f of readFields(graph.payload, source)) {
    if (f.wireType !== WIRE_LEN) continue;
    if (f.fieldNumber === GRAPH_INITIALIZER) initializers.push(parseInitializer(f.payload, source));
    else if (f.fieldNumber === GRAPH_INPUT || f.fieldNumber === GRAPH_OUTPUT) {
      const nameField = readFields(f.payload, source).find((x) => x.fieldNumber === VALUE_INFO_NAME);
      const name = nameField ? decodeString(nameField.payload) : "";
      (f.fieldNumber === GRAPH_INPUT ? inputNames : outputNames).push(name);
    }
  }
  // Graph inputs that are also initializers (old exporters list them) are not real inputs.
  const initializerNames = new Set(initializers.map((i) => i.name));
  return { initializers, inputNames: inputNames.filter((n) => !initializerNames.has(n)), outputNames };
}

/** Where a redirected initializer reads its bytes: another external location, or inline bytes. */
export type InitializerSource = ExternalDataRef | { rawData: Uint8Array };

function rewriteTensor(payload: Uint8Array, target: InitializerSource): Uint8Array {
  const out = new ProtoWriter();
  for (const f of readFields(payload, "<initializer>")) {
    // Drop where the bytes used to be; everything else (dims, type, name, doc) is kept as is.
    if (
      f.fieldNumber === TENSOR_EXTERNAL_DATA ||
      f.fieldNumber === TENSOR_DATA_LOCATION ||
      f.fieldNumber === TENSOR_RAW_DATA
    )
      continue;
    out.raw(f.raw);
  }
  if ("rawData" in target) return out.bytes(TENSOR_RAW_DATA, target.rawData).finish();
  const entry = (key: string, value: string) =>
    out.message(TENSOR_EXTERNAL_DATA, new ProtoWriter().string(ENTRY_KEY, key).string(ENTRY_VALUE, value));
  entry("location", target.location);
  entry("offset", String(target.offsetBytes));
  if (target.lengthBytes !== undefined) entry("length", String(target.lengthBytes));
  out.varint(TENSOR_DATA_LOCATION, DATA_LOCATION_EXTERNAL);
  return out.finish();
}

/**
 * Returns a copy of `model` in which each initializer named in `redirects` reads its bytes from
 * the given external location instead. Other fields are copied byte for byte.
 * @throws UnmaskError ONNX_INITIALIZER_NOT_FOUND when a name in `redirects` is not an initializer.
 */
export function redirectInitializers(
  model: Uint8Array,
  redirects: ReadonlyMap<string, InitializerSource>,
  source = "<onnx>",
): Uint8Array {
  const { fields } = graphField(model, source);
  const found = new Set<string>();
  const out = new ProtoWriter();
  for (const f of fields) {
    if (f.fieldNumber !== MODEL_GRAPH || f.wireType !== WIRE_LEN) {
      out.raw(f.raw);
      continue;
    }
    const graph = new ProtoWriter();
    for (const g of readFields(f.payload, source)) {
      if (g.fieldNumber !== GRAPH_INITIALIZER || g.wireType !== WIRE_LEN) {
        graph.raw(g.raw);
        continue;
      }
      const init = parseInitializer(g.payload, source);
      const target = redirects.get(init.name);
      if (!target) {
        graph.raw(g.raw);
        continue;
      }
      found.add(init.name);
      graph.bytes(GRAPH_INITIALIZER, rewriteTensor(g.payload, target));
    }
    out.message(MODEL_GRAPH, graph);
  }
  for (const name of redirects.keys())
    if (!found.has(name))
      throw new UnmaskError("ONNX_INITIALIZER_NOT_FOUND", `${source}: no initializer named ${name}`, {
        subject: name,
      });
  return out.finish();
}

function tensorValueInfo(init: OnnxInitializer): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of init.dims) shape.message(1, new ProtoWriter().varint(1, d));
  const tensorType = new ProtoWriter().varint(1, init.dataType).message(2, shape);
  return new ProtoWriter()
    .string(VALUE_INFO_NAME, init.name)
    .message(2, new ProtoWriter().message(1, tensorType));
}

/**
 * Returns a copy of `model` in which the named initializers are graph inputs instead (same name,
 * dtype and shape): one session then serves every mask, each run feeding its own W'.
 * @throws UnmaskError ONNX_INITIALIZER_NOT_FOUND when a name is not an initializer.
 */
export function initializersToInputs(
  model: Uint8Array,
  names: ReadonlySet<string>,
  source = "<onnx>",
): Uint8Array {
  const { fields } = graphField(model, source);
  const moved: OnnxInitializer[] = [];
  const out = new ProtoWriter();
  for (const f of fields) {
    if (f.fieldNumber !== MODEL_GRAPH || f.wireType !== WIRE_LEN) {
      out.raw(f.raw);
      continue;
    }
    const graph = new ProtoWriter();
    for (const g of readFields(f.payload, source)) {
      if (g.fieldNumber === GRAPH_INITIALIZER && g.wireType === WIRE_LEN) {
        const init = parseInitializer(g.payload, source);
        if (names.has(init.name)) {
          moved.push(init);
          continue;
        }
      }
      graph.raw(g.raw);
    }
    for (const init of moved) graph.message(GRAPH_INPUT, tensorValueInfo(init));
    out.message(MODEL_GRAPH, graph);
  }
  const found = new Set(moved.map((m) => m.name));
  for (const name of names)
    if (!found.has(name))
      throw new UnmaskError("ONNX_INITIALIZER_NOT_FOUND", `${source}: no initializer named ${name}`, {
        subject: name,
      });
  return out.finish();
}
