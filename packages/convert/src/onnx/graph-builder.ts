/**
 * A small ONNX graph builder: nodes in topological order as they are added, value names made
 * unique, typed attributes, inline constants, and initializers whose bytes live in a
 * safetensors file (ONNX external data with offset/length) or are embedded later.
 */
import { UnmaskError } from "@unmask/mask-format";
import {
  type AttributeMessage,
  type DimensionMessage,
  type GraphMessage,
  type NodeMessage,
  OnnxAttributeType,
  OnnxDataLocation,
  OnnxDataType,
  type TensorMessage,
  type ValueInfoMessage,
} from "./onnx-proto.js";

/** A typed attribute value: ONNX needs the type, and 1.0 vs 1 cannot be told apart in JS. */
export type AttributeValue =
  | { kind: "int"; value: number }
  | { kind: "float"; value: number }
  | { kind: "ints"; value: number[] }
  | { kind: "floats"; value: number[] }
  | { kind: "string"; value: string };

export const int = (value: number): AttributeValue => ({ kind: "int", value });
export const float = (value: number): AttributeValue => ({ kind: "float", value });
export const ints = (value: number[]): AttributeValue => ({ kind: "ints", value });
export const floats = (value: number[]): AttributeValue => ({ kind: "floats", value });
export const str = (value: string): AttributeValue => ({ kind: "string", value });

/** Where an initializer's bytes are: a byte range of a file beside the model. */
export interface ExternalBytes {
  /** File name relative to the model's directory (no ".."). */
  location: string;
  offsetBytes: number;
  lengthBytes: number;
}

interface PendingInitializer {
  tensor: TensorMessage;
  /** Set for weights from the safetensors file; `embed` decides whether they stay external. */
  external?: ExternalBytes;
}

export interface NodeOptions {
  /** Output count (default 1) or explicit output names. */
  outputs?: number | string[];
  domain?: string;
  /** A readable name for the node and the stem of its outputs. */
  name?: string;
}

function toAttribute(name: string, value: AttributeValue): AttributeMessage {
  switch (value.kind) {
    case "int":
      return { name, type: OnnxAttributeType.INT, i: value.value };
    case "float":
      return { name, type: OnnxAttributeType.FLOAT, f: value.value };
    case "ints":
      return { name, type: OnnxAttributeType.INTS, ints: value.value };
    case "floats":
      return { name, type: OnnxAttributeType.FLOATS, floats: value.value };
    case "string":
      return { name, type: OnnxAttributeType.STRING, s: new TextEncoder().encode(value.value) };
  }
}

function valueInfo(name: string, elemType: OnnxDataType, dims: (number | string)[]): ValueInfoMessage {
  const dim: DimensionMessage[] = dims.map((d) =>
    typeof d === "number" ? { dimValue: d } : { dimParam: d },
  );
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

export class GraphBuilder {
  private readonly nodes: NodeMessage[] = [];
  private readonly initializers = new Map<string, PendingInitializer>();
  private readonly inputs: ValueInfoMessage[] = [];
  private readonly outputs: ValueInfoMessage[] = [];
  private readonly used = new Set<string>();
  private readonly opsetDomains = new Set<string>([""]);
  private scopeStack: string[] = [];
  private readonly sharedConstants = new Map<string, string>();

  constructor(readonly name: string) {}

  /** Runs `body` with `scope` prefixed to generated names (readable graphs in Netron). */
  scoped<T>(scope: string, body: () => T): T {
    this.scopeStack.push(scope);
    try {
      return body();
    } finally {
      this.scopeStack.pop();
    }
  }

  private unique(stem: string): string {
    const base = this.scopeStack.length > 0 ? `${this.scopeStack.join("/")}/${stem}` : stem;
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.used.has(name))
      throw new UnmaskError("ONNX_GRAPH", `graph ${this.name}: value ${name} is defined twice`, {
        subject: name,
      });
    this.used.add(name);
    return name;
  }

  input(name: string, elemType: OnnxDataType, dims: (number | string)[]): string {
    this.inputs.push(valueInfo(this.claim(name), elemType, dims));
    return name;
  }

  /** Declares `value` a graph output under `name` (an Identity renames it when they differ). */
  output(value: string, name: string, elemType: OnnxDataType, dims: (number | string)[]): string {
    if (value !== name) this.node("Identity", [value], {}, { outputs: [name] });
    this.outputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** Adds a node with one output; returns the output's name. */
  node(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttributeValue> = {},
    options: NodeOptions = {},
  ): string {
    return this.addNode(opType, inputs, attrs, options)[0];
  }

  /** Adds a node with `count` outputs; returns their names. */
  nodeN(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttributeValue>,
    count: number,
    options: Omit<NodeOptions, "outputs"> = {},
  ): string[] {
    return this.addNode(opType, inputs, attrs, { ...options, outputs: count });
  }

  private addNode(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttributeValue>,
    options: NodeOptions,
  ): string[] {
    const stem = options.name ?? opType;
    const requested = options.outputs ?? 1;
    const outputs =
      typeof requested === "number"
        ? Array.from({ length: requested }, (_, i) => this.unique(requested > 1 ? `${stem}:${i}` : stem))
        : requested.map((o) => this.claim(o));
    const domain = options.domain ?? "";
    this.opsetDomains.add(domain);
    this.nodes.push({
      input: inputs,
      output: outputs,
      name: this.unique(`${stem}#node`),
      opType,
      domain,
      attribute: Object.entries(attrs).map(([k, v]) => toAttribute(k, v)),
    });
    return outputs;
  }

  /** An initializer whose bytes are given now (small constants: shapes, scales, masks). */
  constant(stem: string, dataType: OnnxDataType, dims: number[], rawData: Uint8Array): string {
    const name = this.unique(stem);
    this.initializers.set(name, { tensor: { name, dims, dataType, rawData } });
    return name;
  }

  /** An int64 constant, shared by every node that asks for the same values and dims. */
  constInt64(values: readonly number[], dims: number[] = [values.length]): string {
    return this.shared(`i64[${dims}]=${values}`, () => {
      const data = new BigInt64Array(values.map((v) => BigInt(v)));
      return this.constantUnscoped("const_i64", OnnxDataType.INT64, dims, new Uint8Array(data.buffer));
    });
  }

  /** A float32 constant, shared by every node that asks for the same values and dims. */
  constFloat(values: readonly number[], dims: number[] = [values.length]): string {
    return this.shared(`f32[${dims}]=${values}`, () =>
      this.constantUnscoped(
        "const_f32",
        OnnxDataType.FLOAT,
        dims,
        new Uint8Array(new Float32Array(values).buffer),
      ),
    );
  }

  private shared(key: string, make: () => string): string {
    let name = this.sharedConstants.get(key);
    if (!name) {
      name = make();
      this.sharedConstants.set(key, name);
    }
    return name;
  }

  private constantUnscoped(
    stem: string,
    dataType: OnnxDataType,
    dims: number[],
    rawData: Uint8Array,
  ): string {
    const saved = this.scopeStack;
    this.scopeStack = [];
    try {
      return this.constant(stem, dataType, dims, rawData);
    } finally {
      this.scopeStack = saved;
    }
  }

  /**
   * A weight stored in a file beside the model. The initializer keeps the weight's own name, so a
   * runtime can replace it by name (masked inference overrides initializers this way).
   */
  externalInitializer(name: string, dataType: OnnxDataType, dims: number[], bytes: ExternalBytes): string {
    if (bytes.location.split(/[\\/]/).includes("..") || bytes.location.startsWith("/"))
      throw new UnmaskError(
        "ONNX_EXTERNAL_PATH",
        `graph ${this.name}: external data location ${bytes.location} must stay inside the model directory`,
        { subject: bytes.location },
      );
    this.claim(name);
    this.initializers.set(name, { tensor: { name, dims, dataType }, external: bytes });
    return name;
  }

  /** Initializers that reference external bytes (in graph order). */
  externalInitializers(): { name: string; external: ExternalBytes }[] {
    const out: { name: string; external: ExternalBytes }[] = [];
    for (const [name, p] of this.initializers) if (p.external) out.push({ name, external: p.external });
    return out;
  }

  /** Domains the graph's nodes use ("" is the default ai.onnx domain). */
  domains(): string[] {
    return [...this.opsetDomains];
  }

  /**
   * The GraphProto. With `embedded`, each external initializer whose name is a key gets those
   * bytes as raw_data instead of an external reference.
   */
  build(embedded?: ReadonlyMap<string, Uint8Array>): GraphMessage {
    const initializer: TensorMessage[] = [];
    for (const [name, p] of this.initializers) {
      if (!p.external) {
        initializer.push(p.tensor);
        continue;
      }
      const raw = embedded?.get(name);
      if (raw) {
        if (raw.byteLength !== p.external.lengthBytes)
          throw new UnmaskError(
            "ONNX_GRAPH",
            `graph ${this.name}: initializer ${name} has ${raw.byteLength} bytes, expected ${p.external.lengthBytes}`,
            { subject: name },
          );
        initializer.push({ ...p.tensor, rawData: raw });
        continue;
      }
      initializer.push({
        ...p.tensor,
        dataLocation: OnnxDataLocation.EXTERNAL,
        externalData: [
          { key: "location", value: p.external.location },
          { key: "offset", value: String(p.external.offsetBytes) },
          { key: "length", value: String(p.external.lengthBytes) },
        ],
      });
    }
    return { name: this.name, node: this.nodes, initializer, input: this.inputs, output: this.outputs };
  }
}
