/**
 * What a dataset is to the trainer: class names in label order and a list of labelled images.
 * Three sources build one (image-folder.ts, coop-split.ts, in-memory.ts); everything downstream
 * (few-shot sampling, the image cache, evaluation) sees only this shape.
 */

/** Decoded pixels, row-major HWC uint8 (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA): clip's PixelImage. */
export interface RawImage {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

export interface DatasetItem {
  /**
   * The item's identity in file lists: a POSIX path relative to the dataset root for files
   * (`train/ankle_boot/0001.png`), `memory:<index>` for in-memory images.
   */
  id: string;
  label: number;
  /** An absolute file path, or the pixels themselves. */
  source: string | RawImage;
}

export interface Dataset {
  /** Class names as the source spells them (folder names, split-file names), label order. */
  classNames: string[];
  items: DatasetItem[];
  /** Where item ids are relative to (null for in-memory data). */
  root: string | null;
  /** For messages and the report: "image folder /data/train", "CoOp split x.json (test)". */
  description: string;
}

/** Images per class, label order. */
export function countPerClass(dataset: Dataset): number[] {
  const counts = new Array<number>(dataset.classNames.length).fill(0);
  for (const item of dataset.items) counts[item.label]++;
  return counts;
}

/** Plain code-unit order, as Python's `sorted` on str: no locale surprises across machines. */
export { compareCodeUnits } from "@unmask/clip";
