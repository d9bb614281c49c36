/**
 * Image decoding and resampling as the trainer needs them, behind one small interface so tests
 * and callers can inject their own (the style guide's injectable I/O). The default is
 * @unmask/clip's: sharp decoding as Pillow opens files, Pillow-exact bicubic resizing and OpenAI's
 * test transform.
 */
import {
  loadImage,
  normalizePixels,
  preprocessImage,
  type RgbImage,
  resizeAndCropDecoded,
  resizeRgb,
  toRgb,
} from "@unmask/clip";
import type { RawImage } from "./dataset.js";

export type { RgbImage };

export interface ImageIo {
  /** Decodes a file (or converts in-memory pixels) to RGB. */
  load(source: string | RawImage): Promise<RgbImage>;
  /** Resizes RGB pixels to exactly width x height (bicubic). */
  resize(image: RgbImage, width: number, height: number): RgbImage;
  /** OpenAI's test transform: normalised float32 CHW [3, R, R]. */
  preprocess(source: string | RawImage, resolution: number): Promise<Float32Array>;
}

export const clipImageIo: ImageIo = {
  load: async (source) => (typeof source === "string" ? loadImage(source) : toRgb(source)),
  resize: (image, width, height) => resizeRgb(image, width, height, "bicubic"),
  preprocess: async (source, resolution) =>
    typeof source === "string"
      ? preprocessImage(source, resolution)
      : normalizePixels(resizeAndCropDecoded(source, resolution)),
};
