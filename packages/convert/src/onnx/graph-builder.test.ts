import { isUnmaskError } from "@unmask/mask-format";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { GraphBuilder, int, ints } from "./graph-builder.js";
import { decodeModel, encodeModel, OnnxDataType } from "./onnx-proto.js";

function model(g: GraphBuilder) {
  return encodeModel({
    irVersion: 8,
    opsetImport: g.domains().map((domain) => ({ domain, version: domain === "" ? 17 : 1 })),
    producerName: "test",
    producerVersion: "0",
    graph: g.build(),
  });
}

describe("GraphBuilder + encodeModel", () => {
  it("builds a graph onnxruntime runs: Transpose then Gemm(transB) on a stored [out, in] weight", async () => {
    const g = new GraphBuilder("t");
    const x = g.input("x", OnnxDataType.FLOAT, ["batch", 3]);
    const w = g.constant(
      "w",
      OnnxDataType.FLOAT,
      [2, 3],
      new Uint8Array(new Float32Array([1, 0, 0, 0, 1, 1]).buffer),
    );
    const b = g.constFloat([10, 20]);
    const y = g.node("Gemm", [x, w, b], { transB: int(1) });
    g.output(g.node("Transpose", [y], { perm: ints([1, 0]) }), "y", OnnxDataType.FLOAT, [2, "batch"]);
    const session = await ort.InferenceSession.create(model(g));
    const out = await session.run({
      x: new ort.Tensor("float32", new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]),
    });
    expect(out.y.dims).toEqual([2, 2]);
    expect([...(out.y.data as Float32Array)]).toEqual([11, 14, 25, 31]);
  });

  it("round-trips through decodeModel with proto2 field encodings", () => {
    const g = new GraphBuilder("t");
    const x = g.input("x", OnnxDataType.FLOAT, [1, 4]);
    g.output(g.node("Transpose", [x], { perm: ints([1, 0]) }), "y", OnnxDataType.FLOAT, [4, 1]);
    const bytes = model(g);
    const decoded = decodeModel(bytes);
    expect(decoded.irVersion).toBe(8);
    expect(decoded.graph.node[0].attribute?.[0]).toMatchObject({ name: "perm", ints: [1, 0], type: 7 });
    // AttributeProto.ints is unpacked in onnx.proto (proto2): tag 0x40 per element, not 0x42.
    const attr = Buffer.from(bytes).indexOf(Buffer.from([0x0a, 0x04, 0x70, 0x65, 0x72, 0x6d])); // name "perm"
    expect(attr).toBeGreaterThan(0);
    expect([...bytes.subarray(attr + 6, attr + 10)]).toEqual([0x40, 0x01, 0x40, 0x00]);
  });

  it("shares equal constants and makes generated names unique", () => {
    const g = new GraphBuilder("t");
    expect(g.constInt64([-1, 4])).toBe(g.constInt64([-1, 4]));
    expect(g.constInt64([-1, 4])).not.toBe(g.constInt64([-1, 4], [1, 2]));
    const x = g.input("x", OnnxDataType.FLOAT, [1]);
    const a = g.scoped("blk", () => g.node("Relu", [x]));
    const b = g.scoped("blk", () => g.node("Relu", [a]));
    expect(a).toBe("blk/Relu");
    expect(b).toBe("blk/Relu_1");
  });

  it("refuses external data outside the model directory and duplicate names", () => {
    const g = new GraphBuilder("t");
    for (const location of ["../model.safetensors", "/abs/model.safetensors", "a/../../b"]) {
      let error: unknown;
      try {
        g.externalInitializer("w", OnnxDataType.FLOAT, [1], { location, offsetBytes: 0, lengthBytes: 4 });
      } catch (e) {
        error = e;
      }
      expect(isUnmaskError(error, "ONNX_EXTERNAL_PATH")).toBe(true);
    }
    g.externalInitializer("w", OnnxDataType.FLOAT, [1], {
      location: "m.safetensors",
      offsetBytes: 8,
      lengthBytes: 4,
    });
    expect(() =>
      g.externalInitializer("w", OnnxDataType.FLOAT, [1], {
        location: "m.safetensors",
        offsetBytes: 8,
        lengthBytes: 4,
      }),
    ).toThrow(/defined twice/);
    expect(() => g.build(new Map([["w", new Uint8Array(3)]]))).toThrow(/3 bytes, expected 4/);
  });
});
