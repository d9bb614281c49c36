/**
 * Fuzzing the decoder: at least 10,000 files made from valid ones by flipping bits, overwriting,
 * inserting, deleting and duplicating bytes, cutting and extending; a third of them with the header
 * CRC (and sometimes the payload CRCs) recomputed after editing the header JSON, so the mutations
 * reach the checks behind the checksums. Every file must either decode completely (all tensors and
 * the head) into a consistent mask or throw an UnmaskError with a code: never another exception,
 * never a hang. Seeded, so a failure names a reproducible case.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buildFile, FINGERPRINT, randomBits, rng } from "../test/helpers.js";
import { bitsetByteLength, countZeros } from "./bitset.js";
import { crc32 } from "./crc32.js";
import { decodeMask } from "./decode.js";
import { encodeMask } from "./encode.js";
import { isUnmaskError } from "./errors.js";
import { PREAMBLE_BYTES } from "./header.js";

const CASES = 12_000;
const vectorDir = join(dirname(fileURLToPath(import.meta.url)), "..", "test-vectors");

function seeds(): Uint8Array[] {
  const files: Uint8Array[] = readdirSync(vectorDir)
    .filter((f) => f.endsWith(".umask"))
    .map((f) => new Uint8Array(readFileSync(join(vectorDir, f))));
  const random = rng(99);
  files.push(
    encodeMask({
      baseModel: { name: "fuzz", fingerprint: FINGERPRINT },
      tensors: [
        { name: "a", shape: [64, 64], bits: randomBits(4096, 0.02, random) },
        { name: "b", shape: [5, 7], bits: randomBits(35, 0.5, random) },
        { name: "c", shape: [300], bits: randomBits(300, 0.99, random) },
        { name: "d", shape: [100], bits: randomBits(100, 0, random) },
      ],
      recipe: { lr: 8e-5 },
      head: { classNames: ["p", "q", "r"], template: "{}", textFeatures: Float32Array.of(1, 2, 3, 4, 5, 6) },
    }),
  );
  return files;
}

/** A random byte-level mutation of `file`. */
function mutateBytes(file: Uint8Array, random: () => number): Uint8Array {
  const at = (n = file.length) => Math.floor(random() * n);
  const bytes = Array.from({ length: 1 + at(8) }, () => at(256));
  switch (at(8)) {
    case 0: {
      const out = file.slice();
      for (let i = 0, n = 1 + at(4); i < n; i++) out[at()] ^= 1 << at(8);
      return out;
    }
    case 1: {
      const out = file.slice();
      out[at()] = at(256);
      return out;
    }
    case 2:
      return file.slice(0, at());
    case 3: {
      const start = at();
      const end = Math.min(file.length, start + 1 + at(16));
      return Uint8Array.of(...file.subarray(0, start), ...file.subarray(end));
    }
    case 4: {
      const start = at(file.length + 1);
      return Uint8Array.of(...file.subarray(0, start), ...bytes, ...file.subarray(start));
    }
    case 5: {
      const start = at();
      const piece = file.subarray(start, start + 1 + at(32));
      const where = at(file.length + 1);
      return Uint8Array.of(...file.subarray(0, where), ...piece, ...file.subarray(where));
    }
    case 6:
      return Uint8Array.of(...file, ...bytes);
    default: {
      // A u32 field of the preamble, or any aligned word, set to a boundary value.
      const out = file.slice();
      const values = [0, 1, 0xffffffff, 0x7fffffff, file.length, file.length - PREAMBLE_BYTES, at(1 << 16)];
      const offset = random() < 0.5 ? 8 + 4 * at(2) : 4 * at(Math.floor(file.length / 4));
      if (offset + 4 <= out.length)
        new DataView(out.buffer).setUint32(offset, values[at(values.length)], true);
      return out;
    }
  }
}

/** Edits the header JSON of a valid file (a value, a key, a structure), recomputing its CRC. */
function mutateHeader(file: Uint8Array, random: () => number): Uint8Array {
  const view = new DataView(file.buffer, file.byteOffset, file.length);
  const headerLength = view.getUint32(12, true);
  const header = JSON.parse(
    new TextDecoder().decode(file.subarray(PREAMBLE_BYTES, PREAMBLE_BYTES + headerLength)),
  );
  const payload = file.subarray(PREAMBLE_BYTES + headerLength + 4);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
  const hostile = [
    0,
    -1,
    1,
    2,
    7,
    8,
    9,
    1e300,
    -0.5,
    2 ** 31,
    2 ** 33,
    2 ** 53,
    "x",
    null,
    true,
    [],
    {},
    [1, 2],
  ];
  // Walk to a random object or array inside the header and change one member.
  let node = header;
  for (let depth = 0; depth < 4; depth++) {
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    const key = pick(keys);
    const child = node[key];
    if (typeof child === "object" && child !== null && random() < 0.7) node = child;
    else break;
  }
  const keys = Object.keys(node);
  const key = keys.length > 0 ? pick(keys) : "extra";
  const action = Math.floor(random() * 4);
  if (action === 0 && typeof node[key] === "number") node[key] += pick([-1, 1, -8, 8]);
  else if (action === 1) node[key] = pick(hostile);
  else if (action === 2) delete node[key];
  else if (Array.isArray(node) && node.length > 1) node.reverse();
  else node[key] = pick(hostile);
  let body = payload;
  if (random() < 0.5 && Array.isArray(header.tensors)) {
    // Also recompute the payload CRCs so a lying offset, length or count reaches the decoders.
    body = payload.slice();
    for (const section of [...header.tensors, header.head])
      if (
        section &&
        Number.isSafeInteger(section.offset) &&
        Number.isSafeInteger(section.length) &&
        section.offset >= 0
      )
        section.crc32 = crc32(body.subarray(section.offset, section.offset + section.length));
  }
  return buildFile(header, body);
}

describe("decoder fuzz", () => {
  it(`rejects every bad file of ${CASES} with a coded UnmaskError, or decodes it consistently`, () => {
    const files = seeds();
    const random = rng(2024);
    const outcomes = new Map<string, number>();
    for (let c = 0; c < CASES; c++) {
      const seed = files[c % files.length];
      const file = random() < 0.33 ? mutateHeader(seed, random) : mutateBytes(seed, random);
      let outcome: string;
      try {
        const mask = decodeMask(file);
        for (const t of mask.tensors) {
          const bits = t.bits();
          if (bits.length !== bitsetByteLength(t.numel) || countZeros(bits, t.numel) !== t.zeros)
            throw new Error(`case ${c}: tensor ${t.name} decoded inconsistently`);
        }
        if (mask.head && mask.head.textFeatures.length !== mask.head.classNames.length * mask.head.dim)
          throw new Error(`case ${c}: head decoded inconsistently`);
        outcome = "decoded";
      } catch (error) {
        if (!isUnmaskError(error)) throw new Error(`case ${c}: ${String(error)}`, { cause: error });
        expect(typeof error.code).toBe("string");
        outcome = error.code;
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    const total = [...outcomes.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(CASES);
    // The mutations must reach deep checks, not only the CRC.
    for (const code of [
      "TRUNCATED",
      "BAD_MAGIC",
      "CHECKSUM_MISMATCH",
      "BAD_HEADER",
      "BAD_LAYOUT",
      "TRAILING_BYTES",
      "BAD_PAYLOAD",
    ])
      expect(outcomes.get(code) ?? 0, `${code} in ${JSON.stringify([...outcomes])}`).toBeGreaterThan(0);
  });
});
