/**
 * The few-shot set decoded once into the engine's uint8 cache (engine.ts ImageCache): every image
 * converted to RGB and resized (Pillow bicubic, @unmask/clip) to one fixed `size` x `size`, so the
 * engine can crop any of them by index. The original width and height are kept: crop boxes are
 * drawn at the original size (crop.ts) and applied in normalised coordinates, so a crop's aspect
 * ratio is the one PyTorch would cut from the original file.
 *
 * The default cache size is the model resolution R: cropping at scale >= 0.5 then resamples at
 * most a 1.4x enlargement of the cached pixels, and memory stays at N * R * R * 3 bytes
 * (16-shot ImageNet at 224 px: 2.4 GB; pass a smaller size when that is too much).
 */
import { UnmaskError } from "@unmask/clip";
import type { ImageCache } from "../engine.js";
import type { DatasetItem } from "./dataset.js";
import type { ImageIo } from "./image-io.js";

/** Images decoded concurrently while the cache is built. */
const DECODE_CONCURRENCY = 8;

/** 8192 x 8192 x 3 bytes per image would already be 200 MB: a size this large is a mistake. */
export const MAX_CACHE_SIZE = 8192;

export interface BuildImageCacheOptions {
  items: readonly DatasetItem[];
  /** Side of the cached square, in pixels. */
  size: number;
  io: ImageIo;
  /** Called after each image with (done, total). */
  onImage?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface BuiltImageCache {
  cache: ImageCache;
  /** Original size of each image, cache order. */
  sizes: { width: number; height: number }[];
}

export async function buildImageCache(options: BuildImageCacheOptions): Promise<BuiltImageCache> {
  const { items, size, io } = options;
  if (!Number.isInteger(size) || size < 1 || size > MAX_CACHE_SIZE)
    throw new UnmaskError("BAD_OPTION", `cache size ${size} must be an integer in [1, ${MAX_CACHE_SIZE}]`, {
      subject: "cacheSize",
    });
  const stride = size * size * 3;
  const pixels = new Uint8Array(items.length * stride);
  const sizes: { width: number; height: number }[] = [];
  // Decode a few at a time (sharp works on its own thread pool); resize and store in order.
  for (let start = 0; start < items.length; start += DECODE_CONCURRENCY) {
    options.signal?.throwIfAborted();
    const chunk = items.slice(start, start + DECODE_CONCURRENCY);
    const images = await Promise.all(chunk.map((item) => io.load(item.source)));
    images.forEach((image, k) => {
      const i = start + k;
      sizes.push({ width: image.width, height: image.height });
      const resized =
        image.width === size && image.height === size ? image.data : io.resize(image, size, size).data;
      pixels.set(resized, i * stride);
      options.onImage?.(i + 1, items.length);
    });
  }
  return { cache: { count: items.length, height: size, width: size, pixels }, sizes };
}
