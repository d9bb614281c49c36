/**
 * Test helpers: deterministic random masks, and hand-built .umask files whose header is any
 * object (CRC recomputed) so hostile headers reach the checks behind the checksum.
 */
import { crc32 } from "../src/crc32.js";
import { isUnmaskError } from "../src/errors.js";
import { FORMAT_VERSION, MAGIC, PREAMBLE_BYTES } from "../src/header.js";

/** mulberry32: seeded, uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Packed bits of `numel` entries, each masked off (0) with probability pOff. */
export function randomBits(numel: number, pOff: number, random: () => number): Uint8Array {
  const bits = new Uint8Array(Math.ceil(numel / 8));
  for (let k = 0; k < numel; k++) if (random() >= pOff) bits[k >> 3] |= 0x80 >> (k & 7);
  return bits;
}

export const FINGERPRINT = "ab".repeat(32);

/** A .umask file from a raw header value (serialised as given) and payload, with a valid header CRC. */
export function buildFile(
  header: unknown,
  payload: Uint8Array = new Uint8Array(0),
  options: { version?: number; headerText?: string } = {},
): Uint8Array {
  const json = new TextEncoder().encode(options.headerText ?? JSON.stringify(header));
  const out = new Uint8Array(PREAMBLE_BYTES + json.length + 4 + payload.length);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, options.version ?? FORMAT_VERSION, true);
  view.setUint32(12, json.length, true);
  out.set(json, PREAMBLE_BYTES);
  view.setUint32(PREAMBLE_BYTES + json.length, crc32(out.subarray(0, PREAMBLE_BYTES + json.length)), true);
  out.set(payload, PREAMBLE_BYTES + json.length + 4);
  return out;
}

/** The code of the UnmaskError `fn` throws; fails the test when it throws something else or nothing. */
export function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (isUnmaskError(error)) return error.code;
    throw error;
  }
  throw new Error("expected an UnmaskError, nothing was thrown");
}
