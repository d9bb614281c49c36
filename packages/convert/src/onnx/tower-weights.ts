/**
 * Weights of a tower as graph values: each canonical tensor becomes an initializer of the same
 * name and stored dtype whose bytes stay in model.safetensors (external data, offset/length), and
 * fp16/bf16 weights are followed by a Cast to float so the graph computes in fp32. onnxruntime
 * constant-folds that Cast at session creation: one fp32 copy in memory, none on disk.
 */
import type { TensorEntry } from "@unmask/clip";
import { UnmaskError } from "@unmask/mask-format";
import { type GraphBuilder, int } from "./graph-builder.js";
import { OnnxDataType } from "./onnx-proto.js";

const ONNX_TYPE_OF: Partial<Record<TensorEntry["dtype"], OnnxDataType>> = {
  F32: OnnxDataType.FLOAT,
  F16: OnnxDataType.FLOAT16,
  BF16: OnnxDataType.BFLOAT16,
};

export class TowerWeights {
  private readonly fp32 = new Map<string, string>();
  private readonly storedValues = new Map<string, { value: string; dataType: OnnxDataType }>();

  /**
   * @param tensors canonical name -> entry of the safetensors file (absolute offsets)
   * @param location the safetensors file name relative to the model directory
   * @param source the file, for error messages
   */
  constructor(
    private readonly graph: GraphBuilder,
    private readonly tensors: ReadonlyMap<string, TensorEntry>,
    private readonly location: string,
    private readonly source: string,
  ) {}

  entry(name: string): TensorEntry {
    const entry = this.tensors.get(name);
    if (!entry)
      throw new UnmaskError("TENSOR_NOT_FOUND", `${this.source}: no tensor named ${name}`, { subject: name });
    return entry;
  }

  /** Checks a weight's shape against what the config implies. */
  expectShape(name: string, shape: readonly number[]): TensorEntry {
    const entry = this.entry(name);
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i]))
      throw new UnmaskError(
        "ONNX_WEIGHT_SHAPE",
        `${this.source}: tensor ${name} has shape [${entry.shape.join(", ")}], the config implies [${shape.join(", ")}]`,
        { subject: name },
      );
    return entry;
  }

  /** The weight as stored (its own name and dtype), shape checked against `shape`. */
  stored(name: string, shape: readonly number[]): { value: string; dataType: OnnxDataType } {
    const cached = this.storedValues.get(name);
    if (cached) return cached;
    const entry = this.expectShape(name, shape);
    const dataType = ONNX_TYPE_OF[entry.dtype];
    if (dataType === undefined)
      throw new UnmaskError(
        "ONNX_WEIGHT_DTYPE",
        `${this.source}: tensor ${name} has dtype ${entry.dtype}; the ONNX graphs take F32, F16 or BF16 weights`,
        { subject: name },
      );
    const value = this.graph.externalInitializer(name, dataType, entry.shape, {
      location: this.location,
      offsetBytes: entry.fileOffset,
      lengthBytes: entry.byteLength,
    });
    const result = { value, dataType };
    this.storedValues.set(name, result);
    return result;
  }

  /** The weight as a float32 graph value, shape as stored (checked against `shape`). */
  float32(name: string, shape: readonly number[]): string {
    const cached = this.fp32.get(name);
    if (cached) return cached;
    const { value: stored, dataType } = this.stored(name, shape);
    const value =
      dataType === OnnxDataType.FLOAT
        ? stored
        : this.graph.node(
            "Cast",
            [stored],
            { to: int(OnnxDataType.FLOAT) },
            { outputs: [`${name}::float32`] },
          );
    this.fp32.set(name, value);
    return value;
  }
}
