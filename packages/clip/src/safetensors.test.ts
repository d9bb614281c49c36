import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixturePath } from "@unmask/fixtures";
import { describe, expect, it } from "vitest";
import { inferConfig } from "./config.js";
import { f16ToF32, f32ToF16 } from "./dtype.js";
import { planFromHf } from "./keys.js";
import { encodeSafetensors, parseSafetensors, SafetensorsFile, writeSafetensors } from "./safetensors.js";

const hfPath = () => fixturePath("tiny-vit-p8/hf/model.safetensors");

describe("safetensors", () => {
  it("reads the HF fixture lazily and maps it to OpenAI names", async () => {
    const file = await SafetensorsFile.open(hfPath());
    try {
      const plan = planFromHf(file.tensors.keys());
      const shapes = new Map<string, number[]>();
      for (const [key, p] of plan) {
        if (p.op === "copy") shapes.set(key, file.entry(p.from).shape);
        else if (p.op === "transpose") shapes.set(key, [...file.entry(p.from).shape].reverse());
        else {
          const first = file.entry(p.from[0]).shape;
          shapes.set(key, [first[0] * 3, ...first.slice(1)]);
        }
      }
      const config = inferConfig(shapes);
      expect(config).toMatchObject({
        architecture: "vit",
        embedDim: 64,
        imageResolution: 32,
        visionLayers: 2,
        visionWidth: 128,
        visionPatchSize: 8,
        visionHeads: 2,
        contextLength: 77,
        vocabSize: 49408,
        transformerWidth: 64,
        transformerHeads: 1,
        transformerLayers: 2,
      });
      const ln = await file.readFloat32("vision_model.pre_layrnorm.weight");
      expect(ln.length).toBe(128);
    } finally {
      await file.close();
    }
  });

  it("round-trips through the writer byte for byte", async () => {
    const bytes = new Uint8Array(readFileSync(hfPath()));
    const parsed = parseSafetensors(bytes);
    const tensors = [...parsed.tensors.values()].map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      data: bytes.subarray(t.fileOffset, t.fileOffset + t.byteLength),
    }));
    const dir = mkdtempSync(join(tmpdir(), "st-"));
    await writeSafetensors(join(dir, "a.safetensors"), tensors, { metadata: { format: "pt" } });
    const again = parseSafetensors(new Uint8Array(readFileSync(join(dir, "a.safetensors"))));
    for (const t of tensors) {
      const e = again.tensors.get(t.name)!;
      expect(
        Buffer.from(again.bytes.subarray(e.fileOffset, e.fileOffset + e.byteLength)).equals(
          Buffer.from(t.data),
        ),
      ).toBe(true);
    }
    expect(again.metadata).toEqual({ format: "pt" });
  });

  it("writes the same bytes as encodeSafetensors with in-memory, empty and lazy tensors past one writev", async () => {
    // 1,500 tensors: more than one writev's 1,024 buffers; every 100th is read lazily (a flush
    // before it), one is empty; progress comes once per tensor in file order
    const tensors = Array.from({ length: 1500 }, (_, i) => {
      const data = new Uint8Array(i === 7 ? 0 : 4 * (1 + (i % 5))).map((_, j) => (i * 31 + j) & 255);
      const dtype = i % 3 === 0 ? ("F32" as const) : ("U8" as const);
      const shape = dtype === "F32" ? [data.length / 4] : [data.length];
      return { name: `t${i}`, dtype, shape, data: i % 100 === 50 ? async () => data : data };
    });
    const eager = tensors.map((t) => ({
      ...t,
      data: typeof t.data === "function" ? new Uint8Array(0) : t.data,
    }));
    for (const [i, t] of tensors.entries()) if (typeof t.data === "function") eager[i].data = await t.data();
    const dir = mkdtempSync(join(tmpdir(), "st-"));
    const seen: string[] = [];
    await writeSafetensors(join(dir, "many.safetensors"), tensors, {
      metadata: { kind: "test" },
      onProgress: (e) => seen.push(e.tensor),
    });
    const written = new Uint8Array(readFileSync(join(dir, "many.safetensors")));
    const expected = encodeSafetensors(eager, { kind: "test" });
    expect(Buffer.from(written).equals(Buffer.from(expected))).toBe(true);
    expect(seen.length).toBe(1500);
    expect(new Set(seen).size).toBe(1500);
  });

  describe("hostile input", () => {
    const valid = encodeSafetensors([
      { name: "a", dtype: "F32", shape: [2], data: new Uint8Array(8) },
      { name: "b", dtype: "U8", shape: [3], data: new Uint8Array(3) },
    ]);
    const withHeader = (header: object, dataBytes: number) => {
      const json = new TextEncoder().encode(JSON.stringify(header));
      const out = new Uint8Array(8 + json.length + dataBytes);
      new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
      out.set(json, 8);
      return out;
    };
    it("refuses every truncation with a typed error", () => {
      for (let cut = 0; cut < valid.length; cut++) {
        expect(() => parseSafetensors(valid.subarray(0, cut))).toThrowError(
          expect.objectContaining({ code: expect.stringMatching(/^SAFETENSORS_/) }),
        );
      }
    });
    it("refuses overlapping offsets", () => {
      const bad = withHeader(
        {
          a: { dtype: "U8", shape: [4], data_offsets: [0, 4] },
          b: { dtype: "U8", shape: [4], data_offsets: [2, 6] },
        },
        6,
      );
      expect(() => parseSafetensors(bad)).toThrowError(
        expect.objectContaining({ code: "SAFETENSORS_BAD_OFFSETS" }),
      );
    });
    it("refuses a size that disagrees with dtype x shape", () => {
      const bad = withHeader({ a: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, 4);
      expect(() => parseSafetensors(bad)).toThrowError(/needs 8/);
    });
    it("refuses an oversized header length without allocating it", () => {
      const bad = new Uint8Array(16);
      new DataView(bad.buffer).setBigUint64(0, 1n << 40n, true);
      expect(() => parseSafetensors(bad)).toThrowError(
        expect.objectContaining({ code: "SAFETENSORS_BAD_HEADER" }),
      );
    });
    it("refuses an unknown dtype, naming the tensor", () => {
      const bad = withHeader({ weird: { dtype: "Q4", shape: [1], data_offsets: [0, 1] } }, 1);
      expect(() => parseSafetensors(bad)).toThrowError(/weird/);
    });
  });

  it("rounds float32 to fp16 to nearest even", () => {
    for (const v of [0, 1, -2.5, 65504, 1e-7, 6.1e-5, 0.1, Math.PI])
      expect(Math.abs(f16ToF32(f32ToF16(v)) - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 2 ** -25);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie to even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });
});
