/** A dataset of images already in memory (decoded pixels with labels). */
import { UnmaskError } from "@unmask/clip";
import type { Dataset, RawImage } from "./dataset.js";

export interface InMemoryDatasetOptions {
  classNames: string[];
  images: readonly (RawImage & { label: number })[];
  description?: string;
}

/** Item ids are `memory:<index>`. Throws BAD_IMAGE naming the index of a malformed image. */
export function inMemoryDataset(options: InMemoryDatasetOptions): Dataset {
  const { classNames, images } = options;
  if (classNames.length === 0) throw new UnmaskError("NO_CLASSES", "in-memory dataset: no class names");
  const items = images.map((image, index) => {
    const where = `in-memory image ${index}`;
    const { width, height, channels, data, label } = image;
    if (!Number.isInteger(label) || label < 0 || label >= classNames.length)
      throw new UnmaskError("BAD_IMAGE", `${where}: label ${label} is not in [0, ${classNames.length})`, {
        subject: where,
      });
    if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1)
      throw new UnmaskError("BAD_IMAGE", `${where}: size ${width}x${height} is not positive`, {
        subject: where,
      });
    if (![1, 2, 3, 4].includes(channels) || data.length !== width * height * channels)
      throw new UnmaskError(
        "BAD_IMAGE",
        `${where}: ${data.length} bytes do not match ${width}x${height}x${channels}`,
        { subject: where },
      );
    return { id: `memory:${index}`, label, source: { width, height, channels, data } as RawImage };
  });
  return {
    classNames: [...classNames],
    items,
    root: null,
    description: options.description ?? "in-memory images",
  };
}
