/**
 * Image decoding and resampling as the trainer needs them, behind one small interface so tests
 * and callers can inject their own (the style guide's injectable I/O). The default is
 * @unmask/clip's: sharp decoding, Pillow-exact bicubic resizing and OpenAI's test transform.
 */
import type { RawImage } from "./dataset.js";

export interface ImageIo {
  /** Decodes a file (or converts in-memory pixels) to RGB (channels 3). */
  load(source: string | RawImage): Promise<RawImage>;
  /** Resizes RGB pixels to exactly width x height (bicubic). */
  resize(image: RawImage, width: number, height: number): RawImage;
  /** OpenAI's test transform: normalised float32 CHW [3, R, R]. */
  preprocess(source: string | RawImage, resolution: number): Promise<Float32Array>;
}

/** Grey or RGBA pixels to RGB (alpha dropped, as PIL's convert("RGB") on an opaque image). */
export function toRgb(image: RawImage): RawImage {
  if (image.channels === 3) return image;
  const n = image.width * image.height;
  const out = new Uint8Array(n * 3);
  const c = image.channels;
  for (let i = 0; i < n; i++) {
    if (c === 1) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = image.pixels[i];
    else for (let k = 0; k < 3; k++) out[i * 3 + k] = image.pixels[i * c + k];
  }
  return { width: image.width, height: image.height, channels: 3, pixels: out };
}
