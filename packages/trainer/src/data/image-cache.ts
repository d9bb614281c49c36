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
 *
 * Images stream into the preallocated cache with `threads` + DECODE_AHEAD in flight (`threads`
 * default: os.availableParallelism()), so at most that many decoded originals exist at once.
 * Decoding runs off-thread already: sharp works on libuv's pool, shared by the whole process
 * (UV_THREADPOOL_SIZE, default 4: at most that many images decode at once), with
 * sharp.concurrency() libvips threads an image (1 with glibc's allocator). The resize is
 * JavaScript: with the default resize (clipImageIo.resize) and enough images it runs on the
 * threads the decoders leave (resizeWorkerCount; resize-pool.ts), else on the calling thread.
 * Either way the bytes are the sequential decode-then-resize's (tested).
 */
import { availableParallelism } from "node:os";
import { UnmaskError } from "@unmask/clip";
import type { ImageCache } from "../engine.js";
import type { DatasetItem } from "./dataset.js";
import { clipImageIo, type ImageIo } from "./image-io.js";
import { ResizePool } from "./resize-pool.js";

/**
 * Images in flight beyond `threads`: each holds at most one decoded original, and with
 * `threads` + 4 libuv's default pool of 4 decoders stays fed while the resizes run.
 */
const DECODE_AHEAD = 4;
/** Below this many images the calling thread does it all: starting workers takes ~50-100 ms. */
export const MIN_WORKER_IMAGES = 32;
/**
 * Fewest resize workers worth starting: with one, the calling thread might as well resize (on 2
 * cores it resizing while libuv's pool decodes already keeps both busy; workers add copies and
 * startup, and oversubscribed threads thrash the caches: ~2 ms more CPU an image measured there).
 */
const MIN_RESIZE_WORKERS = 2;
/** libuv's default thread pool size (UV_THREADPOOL_SIZE unset). */
const DEFAULT_UV_THREADPOOL_SIZE = 4;

/**
 * Resize workers for `threads` threads (0: the calling thread resizes): the threads left after
 * sharp's decoders, which run on libuv's pool (at most UV_THREADPOOL_SIZE images at once), taking
 * no more than half the threads: 16 threads -> 12 workers, 4 -> 2, 2 -> 0.
 */
export function resizeWorkerCount(threads: number): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE);
  const decoders = Math.min(
    Number.isInteger(pool) && pool > 0 ? pool : DEFAULT_UV_THREADPOOL_SIZE,
    Math.floor(threads / 2),
  );
  const workers = threads - decoders;
  return workers >= MIN_RESIZE_WORKERS ? workers : 0;
}

/** 8192 x 8192 x 3 bytes per image would already be 200 MB: a size this large is a mistake. */
export const MAX_CACHE_SIZE = 8192;

export interface BuildImageCacheOptions {
  items: readonly DatasetItem[];
  /** Side of the cached square, in pixels. */
  size: number;
  io: ImageIo;
  /**
   * Sizes the work to the machine (default os.availableParallelism()): `threads` + DECODE_AHEAD
   * images in flight, and resizeWorkerCount(threads) resize worker threads with the default resize
   * (none: the calling thread resizes, as it does with another resize).
   */
  threads?: number;
  /** Called after each image with (done, total); images may finish out of order. */
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
  const threads = Math.max(1, Math.floor(options.threads ?? availableParallelism()));
  const stride = size * size * 3;
  const pixels = new Uint8Array(items.length * stride);
  const sizes: { width: number; height: number }[] = new Array(items.length);
  let done = 0;
  const workerCount =
    io.resize === clipImageIo.resize && items.length >= MIN_WORKER_IMAGES ? resizeWorkerCount(threads) : 0;
  let workers: ResizePool | undefined; // started by the first image that needs resizing
  try {
    await streamInOrder(items, threads + DECODE_AHEAD, options.signal, async (item, i) => {
      const image = await io.load(item.source);
      sizes[i] = { width: image.width, height: image.height };
      let resized = image.data;
      if (image.width !== size || image.height !== size) {
        if (workerCount && !workers) workers = new ResizePool(workerCount);
        resized = workers ? await workers.resize(image, size, size) : io.resize(image, size, size).data;
      }
      pixels.set(resized, i * stride);
      options.onImage?.(++done, items.length);
    });
  } finally {
    await workers?.close();
  }
  return { cache: { count: items.length, height: size, width: size, pixels }, sizes };
}

/**
 * Runs `run(item, index)` over the items, starting them in order with at most `inFlight` running;
 * stops starting new ones at the first failure or abort and rethrows it once the running ones end.
 */
async function streamInOrder(
  items: readonly DatasetItem[],
  inFlight: number,
  signal: AbortSignal | undefined,
  run: (item: DatasetItem, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (!failure && next < items.length) {
      const i = next++;
      try {
        signal?.throwIfAborted();
        await run(items[i], i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, items.length) }, lane));
  if (failure) throw failure.error;
}
