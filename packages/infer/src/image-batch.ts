/**
 * Turning the images a caller gives (paths, encoded bytes, decoded pixels or already
 * preprocessed tensors) into one float32 batch [N, 3, R, R], exactly as OpenAI's preprocess.
 */
import { normalizePixels, type PixelImage, preprocessImage, resizeAndCropDecoded } from "@unmask/clip";
import { UnmaskError } from "@unmask/mask-format";

/**
 * An image: a file path, encoded bytes (JPEG, PNG, WebP, ...), decoded 8-bit pixels
 * ({ width, height, channels 1-4, data } HWC), or a preprocessed Float32Array [3, R, R].
 */
export type ClassifierImage = string | Uint8Array | PixelImage | Float32Array;

/** Images decoded at once within a batch (sharp decodes on its own threads). */
const DECODE_CONCURRENCY = 4;

function describe(image: ClassifierImage, index: number): string {
  return typeof image === "string" ? image : `image ${index}`;
}

async function writeOne(
  image: ClassifierImage,
  index: number,
  resolution: number,
  out: Float32Array,
  offset: number,
) {
  const stride = 3 * resolution * resolution;
  if (typeof image === "string" || (image instanceof Uint8Array && !isPixelImage(image))) {
    out.set(await preprocessImage(image, resolution, { source: describe(image, index) }), offset);
    return;
  }
  if (image instanceof Float32Array) {
    if (image.length !== stride)
      throw new UnmaskError(
        "BAD_IMAGE",
        `image ${index}: a preprocessed Float32Array must hold 3x${resolution}x${resolution} = ${stride} floats, it holds ${image.length}`,
        { subject: `images[${index}]` },
      );
    out.set(image, offset);
    return;
  }
  if (isPixelImage(image)) {
    const { width, height, channels, data } = image;
    if (
      !Number.isSafeInteger(width) ||
      !Number.isSafeInteger(height) ||
      width < 1 ||
      height < 1 ||
      ![1, 2, 3, 4].includes(channels) ||
      data.length !== width * height * channels
    )
      throw new UnmaskError(
        "BAD_IMAGE",
        `image ${index}: decoded pixels need width, height >= 1, channels 1-4 and width*height*channels bytes of data`,
        { subject: `images[${index}]` },
      );
    normalizePixels(resizeAndCropDecoded(image, resolution), { out, offset });
    return;
  }
  throw new UnmaskError(
    "BAD_IMAGE",
    `image ${index}: expected a path, bytes, decoded pixels or a Float32Array`,
    {
      subject: `images[${index}]`,
    },
  );
}

function isPixelImage(value: unknown): value is PixelImage {
  return (
    typeof value === "object" &&
    value !== null &&
    !(value instanceof Uint8Array) &&
    !(value instanceof Float32Array) &&
    "data" in value &&
    "width" in value &&
    "height" in value
  );
}

/**
 * Preprocesses `images` into one batch.
 * @returns Float32Array [images.length, 3, R, R]
 * @throws UnmaskError IMAGE_READ_FAILED, IMAGE_DECODE_FAILED, BAD_IMAGE naming the image
 */
export async function imagesToBatch(
  images: readonly ClassifierImage[],
  resolution: number,
): Promise<Float32Array> {
  const stride = 3 * resolution * resolution;
  const out = new Float32Array(images.length * stride);
  let next = 0;
  const worker = async () => {
    while (next < images.length) {
      const i = next++;
      await writeOne(images[i], i, resolution, out, i * stride);
    }
  };
  await Promise.all(Array.from({ length: Math.min(DECODE_CONCURRENCY, images.length) }, worker));
  return out;
}
