/**
 * The committed test vectors: the encoder reproduces each file byte for byte from the input in its
 * JSON description, and the decoder finds the described content.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { countZeros } from "./bitset.js";
import { decodeMask } from "./decode.js";
import { encodeMask, type MaskInput } from "./encode.js";

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "test-vectors");

interface VectorDescription {
  file: string;
  byteLength: number;
  sha256: string;
  baseModel: { name: string | null; fingerprint: string };
  tensors: {
    name: string;
    shape: number[];
    numel: number;
    bitsHex: string;
    zeros: number;
    zeroPositions: number[];
    encoding: string;
    m?: number;
    payloadOffset: number;
    payloadHex: string;
    crc32: number;
  }[];
  recipe?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  head?: { classNames: string[]; template: string; dim: number; textFeatures: number[] };
}

const fromHex = (hex: string) => Uint8Array.from(Buffer.from(hex, "hex"));
const vectors = readdirSync(dir).filter((f) => f.endsWith(".json"));

describe("test vectors", () => {
  it("are present", () => expect(vectors.length).toBeGreaterThanOrEqual(3));

  for (const name of vectors) {
    const description = JSON.parse(readFileSync(join(dir, name), "utf8")) as VectorDescription;
    const bytes = new Uint8Array(readFileSync(join(dir, description.file)));

    it(`${description.file}: the encoder reproduces the file byte for byte`, () => {
      expect(bytes.length).toBe(description.byteLength);
      expect(createHash("sha256").update(bytes).digest("hex")).toBe(description.sha256);
      const input: MaskInput = {
        baseModel: description.baseModel,
        tensors: description.tensors.map((t) => ({ name: t.name, shape: t.shape, bits: fromHex(t.bitsHex) })),
        ...(description.recipe ? { recipe: description.recipe } : {}),
        ...(description.metrics ? { metrics: description.metrics } : {}),
        ...(description.head
          ? {
              head: {
                classNames: description.head.classNames,
                template: description.head.template,
                textFeatures: Float32Array.from(description.head.textFeatures),
              },
            }
          : {}),
      };
      expect(Buffer.from(encodeMask(input)).equals(Buffer.from(bytes))).toBe(true);
    });

    it(`${description.file}: the decoder finds the described content`, () => {
      const mask = decodeMask(bytes);
      expect(mask.baseModel).toEqual(description.baseModel);
      expect(mask.recipe).toEqual(description.recipe);
      expect(mask.metrics).toEqual(description.metrics);
      expect(mask.tensorNames).toEqual(description.tensors.map((t) => t.name));
      for (const expected of description.tensors) {
        const t = mask.tensor(expected.name);
        expect([...t.shape]).toEqual(expected.shape);
        expect(t.numel).toBe(expected.numel);
        expect(t.encoding).toBe(expected.encoding);
        expect(t.m).toBe(expected.m);
        expect(t.offsetBytes).toBe(expected.payloadOffset);
        expect(t.crc32).toBe(expected.crc32);
        expect(
          Buffer.from(bytes.subarray(t.offsetBytes, t.offsetBytes + t.encodedBytes)).toString("hex"),
        ).toBe(expected.payloadHex);
        const bits = t.bits();
        expect(Buffer.from(bits).toString("hex")).toBe(expected.bitsHex);
        expect(countZeros(bits, t.numel)).toBe(expected.zeros);
        const zeroPositions: number[] = [];
        for (let k = 0; k < t.numel; k++)
          if (((bits[k >> 3] >> (7 - (k & 7))) & 1) === 0) zeroPositions.push(k);
        expect(zeroPositions).toEqual(expected.zeroPositions);
      }
      if (description.head) {
        expect(mask.head?.classNames).toEqual(description.head.classNames);
        expect(mask.head?.template).toBe(description.head.template);
        expect(mask.head?.dim).toBe(description.head.dim);
        expect([...(mask.head?.textFeatures ?? [])]).toEqual(description.head.textFeatures);
      } else expect(mask.head).toBeUndefined();
    });
  }
});
