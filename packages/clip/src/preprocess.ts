/**
 * OpenAI's CLIP image transform (`clip/clip.py` `_transform(R)`), step for step:
 *   Resize(R, BICUBIC)  short side to R, long side int(R * long / short), Pillow bicubic
 *   CenterCrop(R)       offsets int(round((size - R) / 2)), Python's round (half to even)
 *   convert("RGB")      grey replicated, alpha dropped
 *   ToTensor            float32 x / 255, CHW
 *   Normalize           (x - mean) / std in float32, CLIP's mean/std
 * With Pillow's resampling reproduced (pillow-resample.ts) and float32 rounding at each step, the
 * result matches torchvision's bit for bit on images that decode identically.
 */
import { UnmaskError } from "@unmask/mask-format";
import { CLIP_MEAN, CLIP_STD } from "./config.js";
import { type DecodedImage, type DecodeOptions, decodeImage, type ImageInput, toRgb } from "./image.js";
import { type PixelImage, type RgbImage, resizeImage } from "./pillow-resample.js";

export interface NormalizeOptions {
  mean?: readonly number[];
  std?: readonly number[];
}

/** torchvision's `_compute_resized_output_size` for an int size: [width, height]. */
export function resizedShortSideSize(width: number, height: number, shortSide: number): [number, number] {
  if (width <= height) return [shortSide, Math.trunc((shortSide * height) / width)];
  return [Math.trunc((shortSide * width) / height), shortSide];
}

/** Python's round() for the half-integers center crop meets: ties go to the even neighbour. */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** torchvision `center_crop` offsets: [left, top]. */
export function centerCropOffsets(
  width: number,
  height: number,
  cropWidth: number,
  cropHeight: number,
): [number, number] {
  return [roundHalfEven((width - cropWidth) / 2), roundHalfEven((height - cropHeight) / 2)];
}

/** Crops a `size` x `size` square from the center (the image must be at least that large). */
export function centerCrop<T extends PixelImage>(image: T, size: number): T {
  if (image.width < size || image.height < size) {
    throw new UnmaskError(
      "BAD_IMAGE",
      `Cannot center-crop ${size}x${size} from a ${image.width}x${image.height} image`,
      {
        subject: "size",
      },
    );
  }
  const [left, top] = centerCropOffsets(image.width, image.height, size, size);
  const { channels } = image;
  const data = new Uint8Array(size * size * channels);
  for (let y = 0; y < size; y++) {
    const from = ((top + y) * image.width + left) * channels;
    data.set(image.data.subarray(from, from + size * channels), y * size * channels);
  }
  return { ...image, width: size, height: size, data };
}

/** Per channel, the 256 values of float32 ((v / 255) - mean) / std, rounded as torch does it. */
function normalizationTables(mean: readonly number[], std: readonly number[]): Float32Array[] {
  return [0, 1, 2].map((c) => {
    const m = Math.fround(mean[c]);
    const s = Math.fround(std[c]);
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = Math.fround(Math.fround(v / 255) - m) / s;
    return table;
  });
}

const CLIP_TABLES = normalizationTables(CLIP_MEAN, CLIP_STD);

/**
 * uint8 RGB HWC -> normalised float32 CHW (`ToTensor` + `Normalize`), written into `out` at
 * `offset` when given (for batches).
 */
export function normalizePixels(
  image: RgbImage,
  options: NormalizeOptions & { out?: Float32Array; offset?: number } = {},
): Float32Array {
  const { width, height, data } = image;
  const plane = width * height;
  if (data.length !== plane * 3) {
    throw new UnmaskError(
      "BAD_IMAGE",
      `RGB data holds ${data.length} bytes, ${width}x${height}x3 needs ${plane * 3}`,
      {
        subject: "data",
      },
    );
  }
  const tables =
    options.mean === undefined && options.std === undefined
      ? CLIP_TABLES
      : normalizationTables(options.mean ?? CLIP_MEAN, options.std ?? CLIP_STD);
  const out = options.out ?? new Float32Array(plane * 3);
  const offset = options.offset ?? 0;
  if (offset + plane * 3 > out.length) {
    throw new UnmaskError("BAD_OPTION", `Output buffer too small: needs ${offset + plane * 3} floats`, {
      subject: "out",
    });
  }
  const [r, g, b] = tables;
  for (let i = 0; i < plane; i++) {
    out[offset + i] = r[data[i * 3]];
    out[offset + plane + i] = g[data[i * 3 + 1]];
    out[offset + 2 * plane + i] = b[data[i * 3 + 2]];
  }
  return out;
}

/**
 * The uint8 RGB `resolution` x `resolution` crop OpenAI's transform produces before `ToTensor`:
 * short side resized with Pillow bicubic (nearest for palette/1-bit images, as Pillow does),
 * center crop, RGB. Useful for uint8 caches.
 */
export function resizeAndCropDecoded(image: DecodedImage | PixelImage, resolution: number): RgbImage {
  const [width, height] = resizedShortSideSize(image.width, image.height, resolution);
  const nearest = "resizesAsNearest" in image && image.resizesAsNearest;
  const resized = resizeImage(image, width, height, nearest ? "nearest" : "bicubic");
  return toRgb(centerCrop(resized, resolution));
}

export interface PreprocessOptions extends DecodeOptions, NormalizeOptions {}

/**
 * Decodes and transforms one image exactly as OpenAI's `preprocess`.
 * @returns Float32Array [3, resolution, resolution].
 * @throws UnmaskError IMAGE_READ_FAILED / IMAGE_DECODE_FAILED naming the file.
 */
export async function preprocessImage(
  input: ImageInput,
  resolution: number,
  options: PreprocessOptions = {},
): Promise<Float32Array> {
  const decoded = await decodeImage(input, options);
  return normalizePixels(resizeAndCropDecoded(decoded, resolution), options);
}

export type PreprocessProgress = { status: "image"; done: number; total: number };

export interface PreprocessImagesOptions extends NormalizeOptions {
  /** Images decoded at once (sharp decodes on its own thread pool). Default 4. */
  concurrency?: number;
  onProgress?: (event: PreprocessProgress) => void;
}

/**
 * `preprocessImage` over many inputs, stacked.
 * @returns Float32Array [N, 3, resolution, resolution] in input order.
 * @throws UnmaskError from the first image that fails, naming it.
 */
export async function preprocessImages(
  inputs: readonly ImageInput[],
  resolution: number,
  options: PreprocessImagesOptions = {},
): Promise<Float32Array> {
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
  const stride = 3 * resolution * resolution;
  const out = new Float32Array(inputs.length * stride);
  let next = 0;
  let done = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < inputs.length && !failed) {
      const index = next++;
      let decoded: DecodedImage;
      try {
        decoded = await decodeImage(inputs[index]);
      } catch (error) {
        failed = true; // the other workers stop taking images
        throw error;
      }
      normalizePixels(resizeAndCropDecoded(decoded, resolution), { ...options, out, offset: index * stride });
      done++;
      options.onProgress?.({ status: "image", done, total: inputs.length });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, inputs.length) }, worker));
  return out;
}
