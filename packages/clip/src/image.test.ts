import { readFile } from "node:fs/promises";
import { deflateSync } from "node:zlib";
import { fixturePath } from "@unmask/fixtures";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { decodeImage, type ImageMode, modeFromHeader } from "./image.js";

/** The mode as decodeImage read it before the header fast path: from sharp's metadata(). */
async function modeFromMetadata(bytes: Uint8Array): Promise<ImageMode> {
  const meta = await sharp(bytes).metadata();
  const oneBit = meta.bitsPerSample === 1 && !meta.isPalette;
  return { format: meta.format ?? "unknown", resizesAsNearest: meta.isPalette === true || oneBit };
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

/** A hand-written grey PNG of `bitDepth` bits (sharp writes 1-bit PNGs only as palettes). */
function greyPng(width: number, height: number, bitDepth: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = 0; // grey
  const rowBytes = Math.ceil((width * bitDepth) / 8);
  const raw = Buffer.alloc((rowBytes + 1) * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < rowBytes; x++) raw[y * (rowBytes + 1) + 1 + x] = (x * 37 + y * 11) & 255;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

describe("modeFromHeader", () => {
  const width = 24;
  const height = 16;
  const rgb = new Uint8Array(width * height * 3).map((_, i) => (i * 29) % 256);
  const raw = { raw: { width, height, channels: 3 as const } };

  it("agrees with sharp's metadata for JPEG and PNG, and defers for other formats", async () => {
    const grey = new Uint8Array(width * height).map((_, i) => (i * 13) % 256);
    const rgba = new Uint8Array(width * height * 4).map((_, i) => (i * 7) % 256);
    const cases: [string, Uint8Array][] = [
      ["jpeg rgb", await sharp(rgb, raw).jpeg().toBuffer()],
      [
        "jpeg grey",
        await sharp(grey, { raw: { width, height, channels: 1 } })
          .jpeg()
          .toBuffer(),
      ],
      ["jpeg cmyk", await sharp(rgb, raw).toColourspace("cmyk").jpeg().toBuffer()],
      ["jpeg photo", new Uint8Array(await readFile(fixturePath("text-image/n01440764_tench.JPEG")))],
      ["png rgb", await sharp(rgb, raw).png().toBuffer()],
      [
        "png rgba",
        await sharp(rgba, { raw: { width, height, channels: 4 } })
          .png()
          .toBuffer(),
      ],
      ["png grey 8-bit", greyPng(width, height, 8)],
      ["png grey 1-bit", greyPng(width, height, 1)],
      ["png grey 2-bit", greyPng(width, height, 2)],
      ["png grey 16-bit", greyPng(width, height, 16)],
      ["png rgb 16-bit", await sharp(rgb, raw).toColourspace("rgb16").png().toBuffer()],
      ...(await Promise.all(
        [2, 4, 16, 256].map(
          async (colours) =>
            [
              `png palette ${colours} colours`,
              await sharp(rgb, raw).png({ palette: true, colours, dither: 0 }).toBuffer(),
            ] as [string, Uint8Array],
        ),
      )),
    ];
    for (const [name, bytes] of cases) {
      const expected = await modeFromMetadata(bytes);
      expect({ name, mode: modeFromHeader(bytes) }).toEqual({ name, mode: expected });
      const decoded = await decodeImage(bytes);
      expect({ name, format: decoded.format, nearest: decoded.resizesAsNearest }).toEqual({
        name,
        format: expected.format,
        nearest: expected.resizesAsNearest,
      });
    }
    expect(cases.filter(([, b]) => modeFromHeader(b)?.resizesAsNearest).length).toBe(5);
    const webp = await sharp(rgb, raw).webp().toBuffer();
    const gif = await sharp(rgb, raw).gif().toBuffer();
    expect(modeFromHeader(webp)).toBeUndefined();
    expect(modeFromHeader(gif)).toBeUndefined();
    expect((await decodeImage(gif)).resizesAsNearest).toBe(true); // via metadata(): GIF opens as "P"
    expect(modeFromHeader(new Uint8Array([0x89, 0x50, 0x4e, 0x47]))).toBeUndefined();
  });

  it("decodes the same pixels as sharp's own raw output", async () => {
    const bytes = new Uint8Array(await readFile(fixturePath("text-image/n02123045_tabby.JPEG")));
    const image = await decodeImage(bytes);
    const { data, info } = await sharp(bytes, { ignoreIcc: true })
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    expect([image.width, image.height, image.channels]).toEqual([info.width, info.height, info.channels]);
    expect(Buffer.from(image.data).equals(data)).toBe(true);
  });
});
