import { describe, expect, it } from "vitest";
import { buildFile, errorCode, FINGERPRINT, randomBits, rng } from "../test/helpers.js";
import { crc32 } from "./crc32.js";
import { decodeMask } from "./decode.js";
import { encodeMask, type MaskInput } from "./encode.js";
import { MAX_GOLOMB_M } from "./golomb.js";
import { MAX_HEADER_BYTES, MAX_TENSOR_NUMEL, MAX_TENSORS } from "./header.js";

function sample(): { input: MaskInput; bytes: Uint8Array } {
  const random = rng(31);
  const input: MaskInput = {
    baseModel: { name: "tiny", fingerprint: FINGERPRINT },
    tensors: [
      { name: "a", shape: [20, 30], bits: randomBits(600, 0.04, random) },
      { name: "b", shape: [17], bits: randomBits(17, 0.5, random) },
    ],
    head: { classNames: ["x", "y"], template: "{}", textFeatures: Float32Array.of(1, 2, 3, 4, 5, 6) },
  };
  return { input, bytes: encodeMask(input) };
}

/** A one-tensor bitmap header for a 9-entry tensor, with overrides. */
function bitmapHeader(tensor: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const payload = Uint8Array.of(0xff, 0x80);
  return {
    header: {
      baseModel: { name: null, fingerprint: FINGERPRINT },
      tensors: [
        {
          name: "w",
          shape: [9],
          numel: 9,
          zeros: 0,
          encoding: "bitmap",
          offset: 0,
          length: 2,
          crc32: crc32(payload),
          ...tensor,
        },
      ],
      ...extra,
    },
    payload,
  };
}

describe("decodeMask", () => {
  it("throws TRUNCATED for a valid file cut at every length", () => {
    const { bytes } = sample();
    for (let cut = 0; cut < bytes.length; cut++)
      expect(
        errorCode(() => decodeMask(bytes.subarray(0, cut))),
        `cut at ${cut}`,
      ).toBe("TRUNCATED");
  });

  it("throws TRAILING_BYTES when bytes follow the last section", () => {
    const { bytes } = sample();
    expect(errorCode(() => decodeMask(Uint8Array.of(...bytes, 0)))).toBe("TRAILING_BYTES");
  });

  it("checks magic, version, header length and header CRC", () => {
    const { bytes } = sample();
    const badMagic = bytes.slice();
    badMagic[1] = 0x75;
    expect(errorCode(() => decodeMask(badMagic))).toBe("BAD_MAGIC");
    expect(errorCode(() => decodeMask(new TextEncoder().encode("PK\u0003\u0004 not a mask")))).toBe(
      "BAD_MAGIC",
    );
    const { header, payload } = bitmapHeader();
    expect(errorCode(() => decodeMask(buildFile(header, payload, { version: 2 })))).toBe("BAD_VERSION");
    const huge = bytes.slice();
    new DataView(huge.buffer).setUint32(12, MAX_HEADER_BYTES + 1, true);
    expect(errorCode(() => decodeMask(huge))).toBe("LIMIT_EXCEEDED");
    const flipped = bytes.slice();
    flipped[20] ^= 1;
    expect(errorCode(() => decodeMask(flipped))).toBe("CHECKSUM_MISMATCH");
  });

  it("decodes tensors lazily: a damaged payload fails only its own tensor", () => {
    const { input, bytes } = sample();
    const mask = decodeMask(bytes);
    const damaged = bytes.slice();
    damaged[mask.tensor("b").offsetBytes] ^= 0x10;
    const lazy = decodeMask(damaged, { source: "lazy.umask" });
    expect([...lazy.tensor("a").bits()]).toEqual([...input.tensors[0].bits]);
    let message = "";
    try {
      lazy.tensor("b").bits();
    } catch (error) {
      message = (error as Error).message;
      expect((error as { code: string }).code).toBe("CHECKSUM_MISMATCH");
    }
    expect(message).toMatch(/lazy\.umask: tensor b/);
    expect(errorCode(() => lazy.tensor("nope"))).toBe("UNKNOWN_TENSOR");
    expect(lazy.has("a")).toBe(true);
    expect(lazy.tensor("a").bits()).toBe(lazy.tensor("a").bits()); // cached
  });

  it("accepts a hand-built file and ignores unknown members", () => {
    const { header, payload } = bitmapHeader({ future: true }, { future: { x: 1 } });
    const mask = decodeMask(buildFile(header, payload));
    expect([...mask.tensor("w").bits()]).toEqual([0xff, 0x80]);
  });

  describe("hostile headers (CRC valid, so the checks behind it must hold)", () => {
    const cases: [string, string, () => Uint8Array][] = [
      ["not JSON", "BAD_HEADER", () => buildFile(null, undefined, { headerText: "{nope" })],
      ["invalid UTF-8", "BAD_HEADER", () => buildFile(null, undefined, { headerText: "\ud800" })],
      ["root is an array", "BAD_HEADER", () => buildFile([])],
      ["no baseModel", "BAD_HEADER", () => buildFile({ tensors: [] })],
      [
        "bad fingerprint",
        "BAD_HEADER",
        () => buildFile({ ...bitmapHeader().header, baseModel: { name: null, fingerprint: "AB" } }),
      ],
      [
        "no tensors",
        "BAD_HEADER",
        () => buildFile({ baseModel: { name: null, fingerprint: FINGERPRINT }, tensors: [] }),
      ],
      ["zero dimension", "BAD_HEADER", () => buildFile(bitmapHeader({ shape: [0], numel: 0 }).header)],
      ["fractional dimension", "BAD_HEADER", () => buildFile(bitmapHeader({ shape: [4.5, 2] }).header)],
      ["string dimension", "BAD_HEADER", () => buildFile(bitmapHeader({ shape: ["9"] }).header)],
      [
        "nine dimensions",
        "BAD_HEADER",
        () => buildFile(bitmapHeader({ shape: [1, 1, 1, 1, 1, 1, 1, 1, 9] }).header),
      ],
      ["numel disagrees", "BAD_HEADER", () => buildFile(bitmapHeader({ numel: 10 }).header)],
      ["zeros above numel", "BAD_HEADER", () => buildFile(bitmapHeader({ zeros: 10 }).header)],
      ["negative offset", "BAD_HEADER", () => buildFile(bitmapHeader({ offset: -1 }).header)],
      ["unsafe length", "BAD_HEADER", () => buildFile(bitmapHeader({ length: 1e300 }).header)],
      ["crc32 above 32 bits", "BAD_HEADER", () => buildFile(bitmapHeader({ crc32: 2 ** 32 }).header)],
      ["unknown encoding", "UNSUPPORTED_ENCODING", () => buildFile(bitmapHeader({ encoding: "rle" }).header)],
      [
        "golomb without m",
        "BAD_HEADER",
        () => buildFile(bitmapHeader({ encoding: "golomb", length: 0 }).header),
      ],
      [
        "golomb m = 0",
        "BAD_HEADER",
        () => buildFile(bitmapHeader({ encoding: "golomb", m: 0, length: 0 }).header),
      ],
      [
        "golomb m above cap",
        "LIMIT_EXCEEDED",
        () => buildFile(bitmapHeader({ encoding: "golomb", m: MAX_GOLOMB_M + 1, length: 0 }).header),
      ],
      [
        "bitmap of wrong length",
        "BAD_LAYOUT",
        () => buildFile(bitmapHeader({ length: 3 }).header, new Uint8Array(3)),
      ],
      [
        "gap before a section",
        "BAD_LAYOUT",
        () => buildFile(bitmapHeader({ offset: 1 }).header, new Uint8Array(3)),
      ],
      ["section past the end", "TRUNCATED", () => buildFile(bitmapHeader().header, new Uint8Array(1))],
      [
        "numel above the cap",
        "LIMIT_EXCEEDED",
        () => buildFile(bitmapHeader({ shape: [65536, 65536], numel: 2 ** 32 }).header),
      ],
      [
        "name above the cap",
        "LIMIT_EXCEEDED",
        () => buildFile(bitmapHeader({ name: "n".repeat(1025) }).header),
      ],
      [
        "recipe not an object",
        "BAD_HEADER",
        () => buildFile(bitmapHeader({}, { recipe: [1] }).header, bitmapHeader().payload),
      ],
      [
        "head of wrong length",
        "BAD_LAYOUT",
        () =>
          buildFile(
            bitmapHeader(
              {},
              {
                head: {
                  classNames: ["a"],
                  template: "",
                  dim: 2,
                  dtype: "F16",
                  offset: 2,
                  length: 2,
                  crc32: 0,
                },
              },
            ).header,
          ),
      ],
      [
        "head dtype F32",
        "BAD_HEADER",
        () =>
          buildFile(
            bitmapHeader(
              {},
              {
                head: {
                  classNames: ["a"],
                  template: "",
                  dim: 1,
                  dtype: "F32",
                  offset: 2,
                  length: 2,
                  crc32: 0,
                },
              },
            ).header,
          ),
      ],
      [
        "head without classes",
        "BAD_HEADER",
        () =>
          buildFile(
            bitmapHeader(
              {},
              {
                head: { classNames: [], template: "", dim: 1, dtype: "F16", offset: 2, length: 0, crc32: 0 },
              },
            ).header,
          ),
      ],
    ];
    for (const [what, code, make] of cases)
      it(`${what}: ${code}`, () => expect(errorCode(() => decodeMask(make()))).toBe(code));

    it("caps the tensor count at MAX_TENSORS (max passes, max + 1 fails)", () => {
      const make = (count: number) => {
        const payload = new Uint8Array(count).fill(0x80);
        const tensors = Array.from({ length: count }, (_, i) => ({
          name: `t${i}`,
          shape: [1],
          numel: 1,
          zeros: 0,
          encoding: "bitmap",
          offset: i,
          length: 1,
          crc32: crc32(Uint8Array.of(0x80)),
        }));
        return buildFile({ baseModel: { name: null, fingerprint: FINGERPRINT }, tensors }, payload);
      };
      expect(decodeMask(make(MAX_TENSORS)).tensors.length).toBe(MAX_TENSORS);
      expect(errorCode(() => decodeMask(make(MAX_TENSORS + 1)))).toBe("LIMIT_EXCEEDED");
    });

    it("accepts numel at the cap without allocating until bits() is called", () => {
      const atCap = bitmapHeader({
        shape: [MAX_TENSOR_NUMEL],
        numel: MAX_TENSOR_NUMEL,
        encoding: "golomb",
        m: 1,
        length: 0,
        crc32: 0,
      });
      const mask = decodeMask(buildFile(atCap.header));
      expect(mask.tensor("w").numel).toBe(MAX_TENSOR_NUMEL);
      const over = bitmapHeader({
        shape: [MAX_TENSOR_NUMEL + 1],
        numel: MAX_TENSOR_NUMEL + 1,
        encoding: "golomb",
        m: 1,
        length: 0,
        crc32: 0,
      });
      expect(errorCode(() => decodeMask(buildFile(over.header)))).toBe("LIMIT_EXCEEDED");
      const many = Array.from({ length: 5 }, (_, i) => ({ ...atCap.header.tensors[0], name: `w${i}` }));
      expect(errorCode(() => decodeMask(buildFile({ ...atCap.header, tensors: many })))).toBe(
        "LIMIT_EXCEEDED",
      );
    });

    it("rejects bitmap padding bits and a zero count that disagree with the header", () => {
      const padding = Uint8Array.of(0xff, 0xc0);
      const withPadding = bitmapHeader({ crc32: crc32(padding) });
      expect(errorCode(() => decodeMask(buildFile(withPadding.header, padding)).tensor("w").bits())).toBe(
        "BAD_PAYLOAD",
      );
      const miscounted = bitmapHeader({ zeros: 1 });
      expect(
        errorCode(() => decodeMask(buildFile(miscounted.header, miscounted.payload)).tensor("w").bits()),
      ).toBe("BAD_PAYLOAD");
    });

    it("rejects non-finite head features", () => {
      const features = Uint8Array.of(0x00, 0x7c); // +Infinity in fp16
      const { header, payload } = bitmapHeader(
        {},
        {
          head: {
            classNames: ["a"],
            template: "",
            dim: 1,
            dtype: "F16",
            offset: 2,
            length: 2,
            crc32: crc32(features),
          },
        },
      );
      expect(errorCode(() => decodeMask(buildFile(header, Uint8Array.of(...payload, ...features))))).toBe(
        "BAD_PAYLOAD",
      );
    });

    it("keeps __proto__ keys as data", () => {
      const { payload } = bitmapHeader();
      const text = JSON.stringify(bitmapHeader().header).replace(
        /}$/,
        ',"recipe":{"__proto__":{"polluted":1}}}',
      );
      const mask = decodeMask(buildFile(null, payload, { headerText: text }));
      expect(Object.hasOwn(mask.recipe ?? {}, "__proto__")).toBe(true);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  });
});
