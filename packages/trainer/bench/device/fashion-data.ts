/**
 * Fashion-MNIST as prep-fashion.mjs writes it (a JSON header, then uint8 grey images: the 10,000
 * test images, then each few-shot list's), as in-memory datasets for train().
 */
import { readFileSync } from "node:fs";
import type { Dataset } from "../../src/data/dataset.js";
import { inMemoryDataset } from "../../src/data/in-memory.js";

export interface FashionData {
  /** The 10,000 test images. */
  test: Dataset;
  /** The few-shot list of seed k (160 images). */
  list(seed: number): Dataset;
}

export function loadFashion(path: string): FashionData {
  const bytes = readFileSync(path);
  const headerLength = bytes.readUInt32LE(0);
  const header = JSON.parse(bytes.subarray(4, 4 + headerLength).toString("utf8")) as {
    classNames: string[];
    width: number;
    height: number;
    test: number[];
    lists: Record<string, number[]>;
  };
  const px = header.width * header.height;
  let offset = 4 + headerLength;
  const take = (labels: number[]) =>
    labels.map((label) => {
      const data = new Uint8Array(bytes.subarray(offset, offset + px));
      offset += px;
      return { width: header.width, height: header.height, channels: 1 as const, data, label };
    });
  const dataset = (images: ReturnType<typeof take>, description: string) =>
    inMemoryDataset({ classNames: header.classNames, images, description });
  const test = dataset(take(header.test), "fashion test");
  const lists = new Map<number, Dataset>();
  for (const seed of Object.keys(header.lists))
    lists.set(Number(seed), dataset(take(header.lists[seed]), `fashion fewshot-16-seed${seed}`));
  return {
    test,
    list(seed) {
      const d = lists.get(seed);
      if (!d) throw new Error(`${path} has no few-shot list for seed ${seed}`);
      return d;
    },
  };
}
