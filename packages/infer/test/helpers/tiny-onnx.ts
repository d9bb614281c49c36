/**
 * Builds small ONNX graphs for tests whose weights are external data inside a safetensors file,
 * the way @unmask/convert lays out a model directory: y = x @ W + b per linear layer, chained.
 */
import { ProtoWriter } from "../../src/onnx/protobuf.js";

const FLOAT = 1;
const FLOAT16 = 10;

export interface ExternalTensor {
  name: string;
  dtype: "F32" | "F16";
  dims: number[];
  location: string;
  offsetBytes: number;
  lengthBytes: number;
}

function valueInfo(name: string, dims: (number | string)[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) {
    const dim = new ProtoWriter();
    if (typeof d === "number") dim.varint(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter().varint(1, FLOAT).message(2, shape);
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
}

function externalInitializer(t: ExternalTensor): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, t.dtype === "F16" ? FLOAT16 : FLOAT);
  w.string(8, t.name);
  for (const [k, v] of [
    ["location", t.location],
    ["offset", String(t.offsetBytes)],
    ["length", String(t.lengthBytes)],
  ])
    w.message(13, new ProtoWriter().string(1, k).string(2, v));
  w.varint(14, 1);
  return w;
}

function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: ProtoWriter[] = [],
): ProtoWriter {
  const n = new ProtoWriter();
  for (const i of inputs) n.string(1, i);
  for (const o of outputs) n.string(2, o);
  n.string(3, `${opType}_${outputs[0]}`);
  n.string(4, opType);
  for (const a of attributes) n.message(5, a);
  return n;
}

/**
 * A chain of linear layers: `inputName` [N, dims[0]] -> ... -> `outputName` [N, dims.at(-1)].
 * Layer i uses the initializers `${prefix}${i}.weight` [in, out] and `${prefix}${i}.bias` [out],
 * looked up in `tensors`. F16 weights are cast to float first, as convert does for fp16 models.
 */
export function buildLinearChain(options: {
  inputName: string;
  outputName: string;
  tensors: ExternalTensor[];
  layers: { weight: string; bias: string }[];
  inputWidth: number;
  outputWidth: number;
}): Uint8Array {
  const graph = new ProtoWriter();
  const byName = new Map(options.tensors.map((t) => [t.name, t]));
  let current = options.inputName;
  options.layers.forEach((layer, i) => {
    const castIfHalf = (name: string): string => {
      if (byName.get(name)?.dtype !== "F16") return name;
      const to = new ProtoWriter().string(1, "to").varint(3, FLOAT).varint(20, 2);
      graph.message(1, node("Cast", [name], [`${name}.f32`], [to]));
      return `${name}.f32`;
    };
    const w = castIfHalf(layer.weight);
    const b = castIfHalf(layer.bias);
    const product = `layer${i}.matmul`;
    const sum = i === options.layers.length - 1 ? options.outputName : `layer${i}.out`;
    graph.message(1, node("MatMul", [current, w], [product]));
    graph.message(1, node("Add", [product, b], [sum]));
    current = sum;
  });
  graph.string(2, "tiny");
  for (const t of options.tensors) graph.message(5, externalInitializer(t));
  graph.message(11, valueInfo(options.inputName, ["batch", options.inputWidth]));
  graph.message(12, valueInfo(options.outputName, ["batch", options.outputWidth]));
  return new ProtoWriter()
    .varint(1, 8)
    .string(2, "unmask-test")
    .message(7, graph)
    .message(8, new ProtoWriter().string(1, "").varint(2, 17))
    .finish();
}
