/**
 * The subset of onnx.proto (onnx/onnx:onnx/onnx.proto, proto2) that unmask writes, as a protobufjs
 * JSON descriptor, and `encodeModel` to serialise a ModelProto.
 *
 * Only the messages and fields the CLIP graphs need are declared; field numbers are ONNX's and
 * stable (docs/clip-formats.md 7.1). Repeated scalars in proto2 are unpacked unless marked
 * `[packed = true]` in onnx.proto (TensorProto's *_data fields are; AttributeProto.ints is not):
 * the descriptor says so per field, so the bytes match what onnx's own writer emits.
 */
import protobuf from "protobufjs";

/** TensorProto.DataType values used here. */
export const OnnxDataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  BFLOAT16: 16,
} as const;
export type OnnxDataType = (typeof OnnxDataType)[keyof typeof OnnxDataType];

/** AttributeProto.AttributeType values used here. */
export const OnnxAttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** TensorProto.DataLocation. */
export const OnnxDataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

// Plain-object shapes of the messages (what `encodeModel` accepts). int64 fields take numbers:
// every value here (dims, offsets, lengths) is a safe integer.
export interface StringStringEntry {
  key: string;
  value: string;
}
export interface TensorMessage {
  name: string;
  dims: number[];
  dataType: OnnxDataType;
  rawData?: Uint8Array;
  externalData?: StringStringEntry[];
  dataLocation?: number;
}
export interface AttributeMessage {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorMessage;
  floats?: number[];
  ints?: number[];
}
export interface NodeMessage {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  domain?: string;
  attribute?: AttributeMessage[];
}
export interface DimensionMessage {
  dimValue?: number;
  dimParam?: string;
}
export interface ValueInfoMessage {
  name: string;
  type: { tensorType: { elemType: OnnxDataType; shape: { dim: DimensionMessage[] } } };
}
export interface GraphMessage {
  name: string;
  node: NodeMessage[];
  initializer: TensorMessage[];
  input: ValueInfoMessage[];
  output: ValueInfoMessage[];
  docString?: string;
}
export interface ModelMessage {
  irVersion: number;
  opsetImport: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  docString?: string;
  graph: GraphMessage;
  metadataProps?: StringStringEntry[];
}

const unpacked = { packed: false };
const packed = { packed: true };

const DESCRIPTOR = {
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: { type: "int64", id: 1 },
            opsetImport: { rule: "repeated", type: "OperatorSetIdProto", id: 8 },
            producerName: { type: "string", id: 2 },
            producerVersion: { type: "string", id: 3 },
            domain: { type: "string", id: 4 },
            modelVersion: { type: "int64", id: 5 },
            docString: { type: "string", id: 6 },
            graph: { type: "GraphProto", id: 7 },
            metadataProps: { rule: "repeated", type: "StringStringEntryProto", id: 14 },
          },
        },
        OperatorSetIdProto: {
          fields: { domain: { type: "string", id: 1 }, version: { type: "int64", id: 2 } },
        },
        StringStringEntryProto: {
          fields: { key: { type: "string", id: 1 }, value: { type: "string", id: 2 } },
        },
        GraphProto: {
          fields: {
            node: { rule: "repeated", type: "NodeProto", id: 1 },
            name: { type: "string", id: 2 },
            initializer: { rule: "repeated", type: "TensorProto", id: 5 },
            docString: { type: "string", id: 10 },
            input: { rule: "repeated", type: "ValueInfoProto", id: 11 },
            output: { rule: "repeated", type: "ValueInfoProto", id: 12 },
            valueInfo: { rule: "repeated", type: "ValueInfoProto", id: 13 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: "repeated", type: "string", id: 1 },
            output: { rule: "repeated", type: "string", id: 2 },
            name: { type: "string", id: 3 },
            opType: { type: "string", id: 4 },
            attribute: { rule: "repeated", type: "AttributeProto", id: 5 },
            docString: { type: "string", id: 6 },
            domain: { type: "string", id: 7 },
          },
        },
        AttributeProto: {
          fields: {
            name: { type: "string", id: 1 },
            f: { type: "float", id: 2 },
            i: { type: "int64", id: 3 },
            s: { type: "bytes", id: 4 },
            t: { type: "TensorProto", id: 5 },
            floats: { rule: "repeated", type: "float", id: 7, options: unpacked },
            ints: { rule: "repeated", type: "int64", id: 8, options: unpacked },
            type: { type: "int32", id: 20 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: "repeated", type: "int64", id: 1, options: unpacked },
            dataType: { type: "int32", id: 2 },
            floatData: { rule: "repeated", type: "float", id: 4, options: packed },
            int32Data: { rule: "repeated", type: "int32", id: 5, options: packed },
            int64Data: { rule: "repeated", type: "int64", id: 7, options: packed },
            name: { type: "string", id: 8 },
            rawData: { type: "bytes", id: 9 },
            docString: { type: "string", id: 12 },
            externalData: { rule: "repeated", type: "StringStringEntryProto", id: 13 },
            dataLocation: { type: "int32", id: 14 },
          },
        },
        ValueInfoProto: {
          fields: {
            name: { type: "string", id: 1 },
            type: { type: "TypeProto", id: 2 },
            docString: { type: "string", id: 3 },
          },
        },
        TypeProto: {
          oneofs: { value: { oneof: ["tensorType"] } },
          fields: { tensorType: { type: "TypeProtoTensor", id: 1 } },
        },
        TypeProtoTensor: {
          fields: { elemType: { type: "int32", id: 1 }, shape: { type: "TensorShapeProto", id: 2 } },
        },
        TensorShapeProto: {
          fields: { dim: { rule: "repeated", type: "TensorShapeDimension", id: 1 } },
        },
        TensorShapeDimension: {
          oneofs: { value: { oneof: ["dimValue", "dimParam"] } },
          fields: {
            dimValue: { type: "int64", id: 1 },
            dimParam: { type: "string", id: 2 },
            denotation: { type: "string", id: 3 },
          },
        },
      },
    },
  },
};

let modelType: protobuf.Type | undefined;

/** The protobufjs type of onnx.ModelProto (built once from the descriptor). */
export function onnxModelType(): protobuf.Type {
  modelType ??= protobuf.Root.fromJSON(DESCRIPTOR).lookupType("onnx.ModelProto");
  return modelType;
}

/** Serialises a ModelProto. */
export function encodeModel(model: ModelMessage): Uint8Array {
  const type = onnxModelType();
  return type.encode(type.fromObject(model)).finish();
}

/** Parses a ModelProto written by `encodeModel` (for tests and inspection). */
export function decodeModel(bytes: Uint8Array): ModelMessage {
  const type = onnxModelType();
  return type.toObject(type.decode(bytes), { longs: Number, defaults: false }) as ModelMessage;
}
