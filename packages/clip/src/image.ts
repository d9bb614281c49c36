/**
 * Image decoding with sharp, configured to hand back the pixels Pillow's `Image.open` would:
 *  - no EXIF auto-orientation (OpenAI's pipeline never applies it);
 *  - embedded ICC profiles ignored (Pillow does not colour-manage);
 *  - the channels of the stored mode kept (grey, grey + alpha, RGB, RGBA), so resizing can follow
 *    Pillow's per-mode rules (premultiplied alpha; nearest for palette and 1-bit images).
 * Formats: whatever sharp reads (JPEG, PNG, WebP, GIF, AVIF, TIFF, ...).
 */
import { readFile } from "node:fs/promises";
import { UnmaskError } from "@unmask/mask-format";
import sharp from "sharp";
import type { PixelImage, RgbImage } from "./pillow-resample.js";

/** An image file path, or its encoded bytes. */
export type ImageInput = string | Uint8Array;

/** Decoding refuses images above this many pixels (sharp's default, 0x3FFF^2): a decompression-bomb guard. */
export const MAX_IMAGE_PIXELS = 0x3fff * 0x3fff;

export interface DecodedImage extends PixelImage {
  /** Pillow would open it in mode "P" or "1": OpenAI's bicubic resize then runs as nearest neighbour. */
  resizesAsNearest: boolean;
  /** sharp's format name: "jpeg", "png", "webp", ... */
  format: string;
}

export interface DecodeOptions {
  /** Name used in error messages for byte inputs (a path names itself). */
  source?: string;
}

function describeInput(input: ImageInput, source?: string): string {
  if (source !== undefined) return source;
  return typeof input === "string" ? input : `image bytes (${input.byteLength} bytes)`;
}

/** What decodeImage reports beside the pixels. */
export type ImageMode = Pick<DecodedImage, "format" | "resizesAsNearest">;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * The format and Pillow's nearest-neighbour rule read from the first bytes, for the formats whose
 * header says it all (undefined for the others, and for bytes too short or malformed to tell:
 * sharp then decides, and reports the error):
 *  - JPEG (FF D8 FF): never palette or 1-bit;
 *  - PNG: the IHDR chunk's colour type 3 is palette ("P"), bit depth 1 of colour type 0 is "1"
 *    (libvips reports these as isPalette / bitsPerSample 1, as decodeImage's metadata path reads).
 */
export function modeFromHeader(bytes: Uint8Array): ImageMode | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff)
    return { format: "jpeg", resizesAsNearest: false };
  // signature (8), IHDR length (4) and type (4), width (4), height (4), bit depth, colour type
  if (bytes.length >= 26 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    if (bytes[12] !== 0x49 || bytes[13] !== 0x48 || bytes[14] !== 0x44 || bytes[15] !== 0x52)
      return undefined;
    const bitDepth = bytes[24];
    const colourType = bytes[25];
    return { format: "png", resizesAsNearest: colourType === 3 || (colourType === 0 && bitDepth === 1) };
  }
  return undefined;
}

/**
 * Decodes an image to 8-bit pixels in its stored channel layout.
 * @throws UnmaskError IMAGE_READ_FAILED when a path cannot be read, IMAGE_DECODE_FAILED (naming
 *   the file) when the bytes are not a decodable image.
 */
export async function decodeImage(input: ImageInput, options: DecodeOptions = {}): Promise<DecodedImage> {
  const name = describeInput(input, options.source);
  let bytes: Uint8Array;
  if (typeof input === "string") {
    try {
      bytes = await readFile(input);
    } catch (cause) {
      throw new UnmaskError(
        "IMAGE_READ_FAILED",
        `Cannot read image file ${name}: ${(cause as Error).message}`,
        {
          cause,
          subject: name,
        },
      );
    }
  } else {
    bytes = input;
  }
  try {
    const pipeline = sharp(bytes, { ignoreIcc: true, failOn: "error", limitInputPixels: MAX_IMAGE_PIXELS });
    // JPEG and PNG headers say whether Pillow opens them as "P" or "1": one sharp call, not two
    // (metadata() cost as much calling-thread time as the decode's own call).
    let mode = modeFromHeader(bytes);
    if (mode === undefined) {
      const meta = await pipeline.metadata();
      const oneBit = meta.bitsPerSample === 1 && !meta.isPalette;
      mode = { format: meta.format ?? "unknown", resizesAsNearest: meta.isPalette === true || oneBit };
    }
    const { data, info } = await pipeline.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
    return {
      width: info.width,
      height: info.height,
      channels: info.channels,
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      ...mode,
    };
  } catch (cause) {
    throw new UnmaskError("IMAGE_DECODE_FAILED", `Cannot decode image ${name}: ${(cause as Error).message}`, {
      cause,
      subject: name,
    });
  }
}

/**
 * Pillow's `convert("RGB")` from grey, grey + alpha, RGB or RGBA: grey is replicated, alpha is
 * dropped (not composited), as OpenAI's pipeline does after its crop.
 */
export function toRgb(image: PixelImage): RgbImage {
  const { width, height, channels, data } = image;
  if (channels === 3) return { width, height, data };
  const pixels = width * height;
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    const p = i * channels;
    if (channels <= 2) {
      out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = data[p];
    } else {
      out[i * 3] = data[p];
      out[i * 3 + 1] = data[p + 1];
      out[i * 3 + 2] = data[p + 2];
    }
  }
  return { width, height, data: out };
}

/**
 * Decodes an image to RGB uint8 HWC (no resizing).
 * @throws UnmaskError IMAGE_READ_FAILED / IMAGE_DECODE_FAILED naming the file.
 */
export async function loadImage(input: ImageInput, options: DecodeOptions = {}): Promise<RgbImage> {
  return toRgb(await decodeImage(input, options));
}
