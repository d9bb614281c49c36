/**
 * inspect: a summary of a .umask file (what the CLI's `unmask inspect` prints).
 */
import { bitsetByteLength } from "./bitset.js";
import { type DecodedMask, type DecodeOptions, decodeMask } from "./decode.js";
import type { TensorEncoding } from "./header.js";

export interface TensorSummary {
  name: string;
  shape: number[];
  parameters: number;
  /** Masked-off entries. */
  zeros: number;
  /** zeros / parameters. */
  zeroFraction: number;
  encoding: TensorEncoding;
  /** Golomb parameter, for encoding "golomb". */
  m?: number;
  encodedBytes: number;
}

export interface MaskSummary {
  version: number;
  fileBytes: number;
  baseModel: { name: string | null; fingerprint: string };
  tensors: TensorSummary[];
  total: {
    tensors: number;
    parameters: number;
    zeros: number;
    zeroFraction: number;
    /** Payload bytes of all tensors. */
    encodedBytes: number;
    /** Whole file size in bits per masked parameter. */
    bitsPerParameter: number;
    /** What a 1-bit-per-parameter bitmap of the same tensors takes (the official R-AMT size). */
    bitmapBytes: number;
  };
  recipe?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  head?: { classes: number; dim: number; template: string; classNames: string[]; encodedBytes: number };
  /** True when every tensor was decoded and checked (zero counts proven, CRCs matched). */
  verified: boolean;
}

export interface InspectOptions extends DecodeOptions {
  /** Decode every tensor to prove the counts (default true; a few ms for ViT-B/16). */
  verify?: boolean;
}

/** Summarises a mask: per tensor and in total, parameters, masked-off count, encoding, bytes. */
export function inspect(input: Uint8Array | DecodedMask, options: InspectOptions = {}): MaskSummary {
  const mask = input instanceof Uint8Array ? decodeMask(input, options) : input;
  const verify = options.verify ?? true;
  if (verify) for (const t of mask.tensors) t.bits();
  const tensors: TensorSummary[] = mask.tensors.map((t) => ({
    name: t.name,
    shape: [...t.shape],
    parameters: t.numel,
    zeros: t.zeros,
    zeroFraction: t.zeros / t.numel,
    encoding: t.encoding,
    ...(t.m !== undefined ? { m: t.m } : {}),
    encodedBytes: t.encodedBytes,
  }));
  let parameters = 0;
  let zeros = 0;
  let encodedBytes = 0;
  let bitmapBytes = 0;
  for (const t of tensors) {
    parameters += t.parameters;
    zeros += t.zeros;
    encodedBytes += t.encodedBytes;
    bitmapBytes += bitsetByteLength(t.parameters);
  }
  const summary: MaskSummary = {
    version: mask.version,
    fileBytes: mask.byteLength,
    baseModel: { ...mask.baseModel },
    tensors,
    total: {
      tensors: tensors.length,
      parameters,
      zeros,
      zeroFraction: zeros / parameters,
      encodedBytes,
      bitsPerParameter: (mask.byteLength * 8) / parameters,
      bitmapBytes,
    },
    verified: verify,
  };
  if (mask.recipe !== undefined) summary.recipe = mask.recipe;
  if (mask.metrics !== undefined) summary.metrics = mask.metrics;
  if (mask.head !== undefined)
    summary.head = {
      classes: mask.head.classNames.length,
      dim: mask.head.dim,
      template: mask.head.template,
      classNames: [...mask.head.classNames],
      encodedBytes: mask.headEncodedBytes,
    };
  return summary;
}
