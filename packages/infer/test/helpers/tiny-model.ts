/**
 * The tiny CLIP fixture converted to a canonical model directory (once per test file), plus
 * seeded masks over it and a reference directory whose model.safetensors holds W' on disk.
 */
import { mkdtempSync } from "node:fs";
import { copyFile, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultMaskedTensors, readSafetensorsFloat32, SafetensorsFile } from "@unmask/clip";
import { convert } from "@unmask/convert";
import { fixturePath } from "@unmask/fixtures";
import {
  applyMask,
  encodeMask,
  fingerprintTensors,
  type MaskHeadInput,
  type WeightDType,
} from "@unmask/mask-format";

export interface TinyModel {
  root: string;
  dir: string;
  cleanup(): Promise<void>;
}

export async function convertTinyModel(dtype: "fp16" | "fp32" = "fp16"): Promise<TinyModel> {
  const root = mkdtempSync(join(tmpdir(), "unmask-infer-test-"));
  const dir = join(root, "model");
  await convert(fixturePath("tiny-vit-p8/model.jit.pt"), dir, { dtype });
  return { root, dir, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** A small xorshift generator so masks are the same on every run. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

export interface MaskSpec {
  /** Probability that a weight is kept, per tensor (default 0.9); 0 zeroes the whole tensor. */
  keep?: Record<string, number>;
  seed?: number;
  tensors?: string[];
  head?: MaskHeadInput;
  /** Fingerprint to write instead of the model's (to test refusal). */
  fingerprint?: string;
}

/** Packed bits per tensor and the encoded .umask bytes. */
export async function makeMask(
  dir: string,
  spec: MaskSpec = {},
): Promise<{ bytes: Uint8Array; bits: Map<string, Uint8Array> }> {
  const file = await SafetensorsFile.open(join(dir, "model.safetensors"));
  try {
    const names =
      spec.tensors ??
      defaultMaskedTensors(
        {
          visionLayers: [...file.tensors.keys()].filter((k) =>
            /^visual\.transformer\.resblocks\.\d+\.attn\.in_proj_weight$/.test(k),
          ).length,
        } as never,
        { patchEmbedding: true },
      );
    const random = seededRandom(spec.seed ?? 7);
    const bits = new Map<string, Uint8Array>();
    const fingerprintInput = [];
    for (const name of names) {
      const entry = file.entry(name);
      const numel = entry.shape.reduce((a, b) => a * b, 1);
      const keep = spec.keep?.[name] ?? 0.9;
      const packed = new Uint8Array(Math.ceil(numel / 8));
      for (let k = 0; k < numel; k++) if (random() < keep) packed[k >> 3] |= 0x80 >> (k & 7);
      bits.set(name, packed);
      fingerprintInput.push({ name, shape: entry.shape, values: await file.readFloat32(name) });
    }
    const fingerprint = spec.fingerprint ?? (await fingerprintTensors(fingerprintInput));
    const bytes = encodeMask({
      baseModel: { name: "tiny-vit-p8", fingerprint },
      tensors: names.map((name) => ({ name, shape: file.entry(name).shape, bits: bits.get(name)! })),
      head: spec.head,
    });
    return { bytes, bits };
  } finally {
    await file.close();
  }
}

/**
 * A copy of the model directory whose model.safetensors has W' = M * W written into it: running
 * the unmodified graphs on it is the reference a masked session must reproduce.
 */
export async function writeMaskedCopy(
  dir: string,
  outDir: string,
  bits: Map<string, Uint8Array>,
): Promise<void> {
  // Same bytes as the original file, with W' written over the masked tensors in place, so the
  // graphs' external-data offsets stay valid.
  const bytes = new Uint8Array(await readFile(join(dir, "model.safetensors")));
  const file = await SafetensorsFile.open(join(dir, "model.safetensors"));
  try {
    for (const [name, b] of bits) {
      const entry = file.entry(name);
      const view = bytes.subarray(entry.fileOffset, entry.fileOffset + entry.byteLength);
      applyMask(view, b, { dtype: entry.dtype as WeightDType, inPlace: true });
    }
  } finally {
    await file.close();
  }
  await writeFile(join(outDir, "model.safetensors"), bytes);
  for (const f of ["config.json", "vision.onnx", "text.onnx"]) await copyFile(join(dir, f), join(outDir, f));
}

export { readSafetensorsFloat32 };
