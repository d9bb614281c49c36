import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fingerprintTensors } from "./fingerprint.js";
import { f16BitsToF32, f32ToF16Bits } from "./half.js";

describe("fingerprintTensors", () => {
  it("matches the independent Python reference (test-vectors/reference.py)", async () => {
    const fp = await fingerprintTensors([{ name: "w", shape: [3], values: Float32Array.of(0.5, -1.25, 3) }]);
    expect(fp).toBe("81070a65bc45b25618b7be2b394834c700a1a887756e30376eb94e89ed08c544");
  });

  it("follows SPEC.md section 6 (checked with node:crypto)", async () => {
    const tensors = [
      { name: "visual.conv1.weight", shape: [2, 3], values: Float32Array.of(1, 2, 3, 4, 5, 6) },
      { name: "é", shape: [1], values: Float32Array.of(-0) },
    ];
    const outer = createHash("sha256").update("umask-fingerprint-v1\n");
    for (const t of tensors) {
      const name = Buffer.from(t.name, "utf8");
      const meta = Buffer.alloc(8 + name.length + 4 * t.shape.length);
      meta.writeUInt32LE(name.length, 0);
      name.copy(meta, 4);
      meta.writeUInt32LE(t.shape.length, 4 + name.length);
      for (const [i, d] of t.shape.entries()) meta.writeUInt32LE(d, 8 + name.length + 4 * i);
      outer.update(meta);
      outer.update(createHash("sha256").update(Buffer.from(t.values.buffer)).digest());
    }
    expect(await fingerprintTensors(tensors)).toBe(outer.digest("hex"));
  });

  it("agrees for fp16 weights and their float32 widening, differs on any change", async () => {
    const fp16 = Uint16Array.of(f32ToF16Bits(0.1), f32ToF16Bits(-2), f32ToF16Bits(3.5), f32ToF16Bits(1e-3));
    const widened = Float32Array.from(fp16, (h) => f16BitsToF32(h));
    const base = await fingerprintTensors([{ name: "w", shape: [2, 2], values: widened }]);
    expect(await fingerprintTensors([{ name: "w", shape: [2, 2], values: widened.slice() }])).toBe(base);
    expect(await fingerprintTensors([{ name: "w", shape: [4], values: widened }])).not.toBe(base);
    expect(await fingerprintTensors([{ name: "v", shape: [2, 2], values: widened }])).not.toBe(base);
    const changed = widened.slice();
    changed[3] = 0;
    expect(await fingerprintTensors([{ name: "w", shape: [2, 2], values: changed }])).not.toBe(base);
  });

  it("rejects a shape that does not match the values", async () => {
    await expect(
      fingerprintTensors([{ name: "w", shape: [5], values: new Float32Array(4) }]),
    ).rejects.toMatchObject({
      code: "BAD_INPUT",
    });
  });
});
