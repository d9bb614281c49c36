/**
 * The base-model fingerprint: which weights a mask was trained on. SPEC.md section 6.
 *
 *   fingerprint = hex(SHA-256("umask-fingerprint-v1\n" || for each masked tensor, in mask order:
 *                   u32le(len(name)) || name (UTF-8) || u32le(ndim) || u32le(dim)... ||
 *                   SHA-256(values as float32 little-endian)))
 *
 * Values are hashed as float32 so a model stored in fp16 and its exact fp32 widening agree. Each
 * tensor's values get their own digest so no more than one tensor is ever held as bytes (WebCrypto
 * has no streaming digest).
 */
import { MaskFormatError } from "./errors.js";

export interface FingerprintTensor {
  name: string;
  shape: readonly number[];
  /** The weight's values, row-major, numel long. */
  values: Float32Array;
}

/** The one WebCrypto call used; injectable for tests or runtimes without globalThis.crypto. */
export interface DigestProvider {
  digest(algorithm: "SHA-256", data: Uint8Array): Promise<ArrayBuffer>;
}

export interface FingerprintOptions {
  /** Defaults to globalThis.crypto.subtle (Node >= 20, browsers in secure contexts). */
  subtle?: DigestProvider;
}

export const FINGERPRINT_DOMAIN = "umask-fingerprint-v1\n";

const littleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/**
 * Fingerprint of the masked tensors of a base model, as 64 lowercase hex digits.
 * @throws MaskFormatError BAD_INPUT when a shape does not match its values, or no SHA-256 exists
 */
export async function fingerprintTensors(
  tensors: readonly FingerprintTensor[],
  options: FingerprintOptions = {},
): Promise<string> {
  const subtle =
    options.subtle ?? (globalThis as { crypto?: { subtle?: DigestProvider } }).crypto?.subtle ?? undefined;
  if (subtle === undefined)
    throw new MaskFormatError(
      "BAD_INPUT",
      "fingerprintTensors needs globalThis.crypto.subtle (or options.subtle)",
    );
  const utf8 = new TextEncoder();
  const parts: Uint8Array[] = [utf8.encode(FINGERPRINT_DOMAIN)];
  for (const tensor of tensors) {
    const { name, shape, values } = tensor;
    if (!(values instanceof Float32Array))
      throw new MaskFormatError("BAD_INPUT", `${name}: fingerprint values must be a Float32Array`, {
        subject: name,
      });
    let numel = 1;
    for (const d of shape) numel *= d;
    if (
      shape.length === 0 ||
      !shape.every((d) => Number.isSafeInteger(d) && d >= 1) ||
      numel !== values.length
    )
      throw new MaskFormatError(
        "BAD_INPUT",
        `${name}: shape [${shape}] does not match ${values.length} values`,
        { subject: name },
      );
    const nameBytes = utf8.encode(name);
    const meta = new Uint8Array(8 + nameBytes.length + 4 * shape.length);
    const view = new DataView(meta.buffer);
    view.setUint32(0, nameBytes.length, true);
    meta.set(nameBytes, 4);
    view.setUint32(4 + nameBytes.length, shape.length, true);
    for (let i = 0; i < shape.length; i++) view.setUint32(8 + nameBytes.length + 4 * i, shape[i], true);
    parts.push(meta, new Uint8Array(await subtle.digest("SHA-256", float32LeBytes(values))));
  }
  let total = 0;
  for (const p of parts) total += p.length;
  const message = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    message.set(p, at);
    at += p.length;
  }
  const digest = new Uint8Array(await subtle.digest("SHA-256", message));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function float32LeBytes(values: Float32Array): Uint8Array {
  if (littleEndian) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return out;
}
