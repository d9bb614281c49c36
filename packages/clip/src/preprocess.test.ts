import { fixturePath } from "@unmask/fixtures";
import { isUnmaskError } from "@unmask/mask-format";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { decodeImage, toRgb } from "./image.js";
import { resizeImage } from "./pillow-resample.js";
import {
  centerCrop,
  centerCropOffsets,
  normalizePixels,
  preprocessImage,
  preprocessImages,
  resizeAndCropDecoded,
  resizedShortSideSize,
} from "./preprocess.js";
import { SafetensorsFile } from "./safetensors.js";

const PHOTOS = [
  "n01440764_tench.JPEG",
  "n02123045_tabby.JPEG",
  "n03000134_chainlink_fence.JPEG",
  "n04285008_sports_car.JPEG",
];

async function references(): Promise<Map<string, Float32Array>> {
  const file = await SafetensorsFile.open(fixturePath("text-image/preprocess.safetensors"));
  try {
    const out = new Map<string, Float32Array>();
    for (const name of PHOTOS) out.set(name, await file.readFloat32(`${name}.224`));
    return out;
  } finally {
    await file.close();
  }
}

function absDiff(a: Float32Array, b: Float32Array): { max: number; mean: number } {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    sum += d;
  }
  return { max, mean: sum / a.length };
}

describe("OpenAI preprocessing parity (fixtures/text-image/preprocess.safetensors)", () => {
  it("reproduces the reference tensors of the four photos", async () => {
    const refs = await references();
    for (const name of PHOTOS) {
      const got = await preprocessImage(fixturePath(`text-image/${name}`), 224);
      const d = absDiff(got, refs.get(name) as Float32Array);
      // The contract is mean <= 0.01; today decoding, resampling and normalisation are bit-exact
      // (sharp's libjpeg decodes as Pillow's does), so any difference at all is a regression.
      expect({ name, ...d }).toEqual({ name, max: 0, mean: 0 });
    }
  });

  it("batches with preprocessImages in input order and reports progress", async () => {
    const refs = await references();
    const events: number[] = [];
    const paths = PHOTOS.map((name) => fixturePath(`text-image/${name}`));
    const batch = await preprocessImages([...paths].reverse(), 224, {
      concurrency: 3,
      onProgress: (e) => events.push(e.done),
    });
    const stride = 3 * 224 * 224;
    expect(batch.length).toBe(4 * stride);
    [...PHOTOS].reverse().forEach((name, i) => {
      expect(absDiff(batch.subarray(i * stride, (i + 1) * stride), refs.get(name) as Float32Array).max).toBe(
        0,
      );
    });
    expect(events).toEqual([1, 2, 3, 4]);
  });
});

describe("transform steps", () => {
  it("sizes the short side like torchvision (long side truncated)", () => {
    expect(resizedShortSideSize(500, 375, 224)).toEqual([298, 224]);
    expect(resizedShortSideSize(375, 500, 224)).toEqual([224, 298]);
    expect(resizedShortSideSize(300, 300, 224)).toEqual([224, 224]);
    expect(resizedShortSideSize(1000, 3, 224)).toEqual([74666, 224]);
  });

  it("center-crops with Python's round half to even", () => {
    expect(centerCropOffsets(225, 224, 224, 224)).toEqual([0, 0]); // round(0.5) = 0
    expect(centerCropOffsets(227, 224, 224, 224)).toEqual([2, 0]); // round(1.5) = 2
    expect(centerCropOffsets(229, 224, 224, 224)).toEqual([2, 0]); // round(2.5) = 2
    expect(centerCropOffsets(298, 224, 224, 224)).toEqual([37, 0]);
  });

  it("normalises with CLIP's mean/std in float32", () => {
    const out = normalizePixels({ width: 1, height: 1, data: new Uint8Array([0, 128, 255]) });
    const expected = [
      (0 - 0.48145466) / 0.26862954,
      (128 / 255 - 0.4578275) / 0.26130258,
      (1 - 0.40821073) / 0.27577711,
    ];
    for (let c = 0; c < 3; c++) expect(out[c]).toBeCloseTo(expected[c], 6);
  });
});

describe("decoding", () => {
  const width = 40;
  const height = 30;
  const rgba = new Uint8Array(width * height * 4).map((_, i) =>
    i % 4 === 3 ? (i * 7) % 256 : (i * 31) % 256,
  );
  const rgb = new Uint8Array(width * height * 3).map((_, i) => (i * 29) % 256);

  it("reads lossless PNG and WebP pixels exactly, alpha kept", async () => {
    const png = await sharp(rgba, { raw: { width, height, channels: 4 } })
      .png()
      .toBuffer();
    const webp = await sharp(rgba, { raw: { width, height, channels: 4 } })
      .webp({ lossless: true, exact: true })
      .toBuffer();
    for (const bytes of [png, webp]) {
      const image = await decodeImage(bytes);
      expect(image.channels).toBe(4);
      expect(Buffer.from(image.data).equals(Buffer.from(rgba))).toBe(true);
      expect(image.resizesAsNearest).toBe(false);
    }
  });

  it("replicates greyscale into RGB", async () => {
    const grey = new Uint8Array(width * height).map((_, i) => i % 256);
    const png = await sharp(grey, { raw: { width, height, channels: 1 } })
      .toColourspace("b-w")
      .png()
      .toBuffer();
    const image = await decodeImage(png);
    const rgbOut = resizeAndCropDecoded(image, 30);
    for (let i = 0; i < 30 * 30; i++) {
      expect(rgbOut.data[i * 3]).toBe(rgbOut.data[i * 3 + 1]);
      expect(rgbOut.data[i * 3]).toBe(rgbOut.data[i * 3 + 2]);
    }
  });

  it("does not apply EXIF orientation, as Pillow in OpenAI's pipeline", async () => {
    const jpeg = await sharp(rgb, { raw: { width, height, channels: 3 } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const image = await decodeImage(jpeg);
    expect([image.width, image.height]).toEqual([width, height]);
  });

  it("resizes palette images with nearest neighbour, as Pillow does for mode P", async () => {
    const png = await sharp(rgb, { raw: { width, height, channels: 3 } })
      .png({ palette: true, dither: 0 })
      .toBuffer();
    const image = await decodeImage(png);
    expect(image.resizesAsNearest).toBe(true);
    const out = resizeAndCropDecoded(image, 20);
    // Short side 30 -> 20, long side trunc(20 * 40 / 30) = 26, crop offset round(6 / 2) = 3.
    const expected = toRgb(centerCrop(resizeImage(image, 26, 20, "nearest"), 20));
    expect(Buffer.from(out.data).equals(Buffer.from(expected.data))).toBe(true);
    expect(
      Buffer.from(out.data).equals(Buffer.from(toRgb(centerCrop(resizeImage(image, 26, 20), 20)).data)),
    ).toBe(false);
  });

  it("throws IMAGE_DECODE_FAILED naming the file for bad bytes, IMAGE_READ_FAILED for a missing file", async () => {
    const bad = fixturePath("text-image/tokenizer.json");
    await expect(preprocessImage(bad, 224)).rejects.toSatisfy(
      (e: unknown) =>
        isUnmaskError(e, "IMAGE_DECODE_FAILED") && (e as Error).message.includes("tokenizer.json"),
    );
    await expect(
      decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 0x00]), { source: "upload.jpg" }),
    ).rejects.toSatisfy(
      (e: unknown) => isUnmaskError(e, "IMAGE_DECODE_FAILED") && (e as Error).message.includes("upload.jpg"),
    );
    await expect(decodeImage("/nonexistent/cat.png")).rejects.toSatisfy(
      (e: unknown) =>
        isUnmaskError(e, "IMAGE_READ_FAILED") && (e as Error).message.includes("/nonexistent/cat.png"),
    );
    const paths = [fixturePath(`text-image/${PHOTOS[0]}`), bad];
    await expect(preprocessImages(paths, 224)).rejects.toSatisfy((e: unknown) =>
      isUnmaskError(e, "IMAGE_DECODE_FAILED"),
    );
  });
});
