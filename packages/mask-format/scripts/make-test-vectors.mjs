/**
 * Regenerates test-vectors/: small .umask files and, beside each, a JSON file with the encoder's
 * input and the expected decoded content (see test-vectors/README.md). Deterministic: running it
 * twice writes the same bytes. Run after a build, and only when the format changes (bump
 * FORMAT_VERSION then):
 *
 *   pnpm --filter @unmask/mask-format build && node packages/mask-format/scripts/make-test-vectors.mjs
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeMask, encodeMask } from "../dist/index.js";

const outDir = join(dirname(fileURLToPath(import.meta.url)), "..", "test-vectors");

/** mulberry32: a tiny seeded generator, uniform in [0, 1). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bits of `numel` entries, each masked off (0) with probability pOff. */
function randomBits(numel, pOff, random) {
  const bits = new Uint8Array(Math.ceil(numel / 8));
  for (let k = 0; k < numel; k++) if (random() >= pOff) bits[k >> 3] |= 0x80 >> (k & 7);
  return bits;
}

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const fingerprint = (text) => createHash("sha256").update(text).digest("hex");

const vectors = [
  {
    file: "bitmap-small.umask",
    description:
      "One 3x5 tensor, half masked off: stored as a bitmap (15 entries, 1 padding bit). No model name.",
    input: () => {
      const random = rng(1);
      return {
        baseModel: { name: null, fingerprint: fingerprint("bitmap-small") },
        tensors: [{ name: "w", shape: [3, 5], bits: randomBits(15, 0.5, random) }],
      };
    },
  },
  {
    file: "golomb-mixed.umask",
    description:
      "Four tensors: 3% off (golomb, m not a power of two), all kept (golomb, empty payload), 95% off (golomb over the kept entries, minority bit 1) and 50% off (bitmap). Recipe and metrics.",
    input: () => {
      const random = rng(2);
      return {
        baseModel: { name: "tiny-test-model", fingerprint: fingerprint("golomb-mixed") },
        tensors: [
          {
            name: "visual.transformer.resblocks.0.attn.in_proj_weight",
            shape: [48, 50],
            bits: randomBits(2400, 0.03, random),
          },
          {
            name: "visual.transformer.resblocks.0.attn.out_proj.weight",
            shape: [7, 9],
            bits: randomBits(63, 0, random),
          },
          { name: "visual.conv1.weight", shape: [4, 3, 2, 5], bits: randomBits(120, 0.95, random) },
          { name: "visual.proj", shape: [13], bits: randomBits(13, 0.5, random) },
        ],
        recipe: { method: "R-AMT", lr: 0.00008, epochs: 30, shots: 16, seed: 1, threshold: 0.005 },
        metrics: { accuracyBefore: 0.6523, accuracyAfter: 0.8396 },
      };
    },
  },
  {
    file: "with-head.umask",
    description:
      "One 64x33 tensor with 5% off (golomb) and a classifier head: 3 classes, 4-dim fp16 text features (values exact in fp16). Non-ASCII class name.",
    input: () => {
      const random = rng(3);
      const features = new Float32Array(12);
      for (let i = 0; i < features.length; i++) features[i] = Math.round((random() * 2 - 1) * 1024) / 1024;
      return {
        baseModel: { name: "ViT-B/16", fingerprint: fingerprint("with-head") },
        tensors: [
          {
            name: "visual.transformer.resblocks.11.attn.out_proj.weight",
            shape: [64, 33],
            bits: randomBits(2112, 0.05, random),
          },
        ],
        recipe: { method: "R-AMT", dataset: "fashion-mnist" },
        head: {
          classNames: ["T-shirt/top", "trouser", "ankle boot \u{1F462}"],
          template: "a photo of a {}.",
          textFeatures: features,
        },
      };
    },
  },
];

for (const vector of vectors) {
  const input = vector.input();
  const bytes = encodeMask(input);
  const mask = decodeMask(bytes);
  const description = {
    file: vector.file,
    description: vector.description,
    byteLength: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    baseModel: input.baseModel,
    tensors: mask.tensors.map((t, i) => {
      const bits = input.tensors[i].bits;
      const zeroPositions = [];
      for (let k = 0; k < t.numel; k++)
        if (((bits[k >> 3] >> (7 - (k & 7))) & 1) === 0) zeroPositions.push(k);
      return {
        name: t.name,
        shape: [...t.shape],
        numel: t.numel,
        bitsHex: hex(bits),
        zeros: t.zeros,
        zeroPositions,
        encoding: t.encoding,
        ...(t.m !== undefined ? { m: t.m } : {}),
        payloadOffset: t.offsetBytes,
        payloadHex: hex(bytes.subarray(t.offsetBytes, t.offsetBytes + t.encodedBytes)),
        crc32: t.crc32,
      };
    }),
    ...(input.recipe !== undefined ? { recipe: input.recipe } : {}),
    ...(input.metrics !== undefined ? { metrics: input.metrics } : {}),
    ...(input.head !== undefined
      ? {
          head: {
            classNames: input.head.classNames,
            template: input.head.template,
            dim: input.head.textFeatures.length / input.head.classNames.length,
            textFeatures: [...input.head.textFeatures],
          },
        }
      : {}),
  };
  writeFileSync(join(outDir, vector.file), bytes);
  writeFileSync(
    join(outDir, vector.file.replace(/\.umask$/, ".json")),
    `${JSON.stringify(description, null, 2)}\n`,
  );
  console.log(`${vector.file}: ${bytes.length} bytes`);
}
