/**
 * evaluateImageFolder: accuracy of a classifier on a labelled image folder, with the same
 * dataset conventions as the trainer's evaluation so the numbers can be compared:
 * - one subfolder per class, classes in sorted (UTF-16 code unit) folder order, images found
 *   recursively and sorted, dot-files skipped;
 * - a folder whose subfolders are only train/val/test is a split layout: `test` (else `val`)
 *   is evaluated;
 * - with a mask head, the folder classes are matched to the head's classes by name, exactly or
 *   after the recipe's cleaning (folder `ankle_boot` is the head's class `ankle boot`).
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import {
  cleanClassName,
  compareCodeUnits,
  IMAGE_EXTENSIONS,
  listClassImages,
  listSubfolders,
} from "@unmask/clip";
import { UnmaskError } from "@unmask/mask-format";
import type { Classifier } from "./classifier.js";

/** File endings taken as images (what sharp decodes); the list lives in @unmask/clip, as the trainer's. */
export { IMAGE_EXTENSIONS };

const SPLIT_FOLDERS = new Set(["train", "val", "test"]);

export interface LabelledImages {
  classNames: string[];
  items: { path: string; label: number }[];
  root: string;
}

/**
 * Lists a labelled image folder (or the test split of a train/val/test layout).
 * @throws UnmaskError DATA_NOT_FOUND, NO_CLASSES, EMPTY_CLASS
 */
export async function listImageFolder(path: string): Promise<LabelledImages> {
  const info = await stat(path).catch(() => null);
  if (!info?.isDirectory())
    throw new UnmaskError("DATA_NOT_FOUND", `${path}: not a folder of class subfolders`, { subject: path });
  let root = path;
  const top = await listSubfolders(path);
  if (top.length > 0 && top.every((name) => SPLIT_FOLDERS.has(name))) {
    const split = top.includes("test") ? "test" : top.includes("val") ? "val" : null;
    if (!split)
      throw new UnmaskError("DATA_NOT_FOUND", `${path}: has train/ but no test/ or val/ folder to evaluate`, {
        subject: path,
      });
    root = join(path, split);
  }
  const { classNames, items } = await listClassImages(root);
  return { classNames, items, root };
}

/** The position of `name` in `classNames`: an exact match first, else a match after cleanClassName. */
export function findClass(classNames: readonly string[], name: string): number | undefined {
  const exact = classNames.indexOf(name);
  if (exact >= 0) return exact;
  const cleaned = cleanClassName(name);
  const found = classNames.findIndex((c) => cleanClassName(c) === cleaned);
  return found >= 0 ? found : undefined;
}

/** Relabels `data` onto `classNames` by name (the classifier's order). */
export function alignToClasses(data: LabelledImages, classNames: readonly string[]): LabelledImages {
  const map = data.classNames.map((c) => {
    const label = findClass(classNames, c);
    if (label === undefined)
      throw new UnmaskError(
        "CLASS_MISMATCH",
        `${data.root}: class "${c}" is not among the classifier's classes (${classNames.join(", ")})`,
        { subject: c },
      );
    return label;
  });
  return {
    root: data.root,
    classNames: [...classNames],
    items: data.items.map((item) => ({ path: item.path, label: map[item.label] })),
  };
}

export type EvaluateProgress = { status: "images"; done: number; total: number };

export interface EvaluateImageFolderOptions {
  classifier: Classifier;
  data: LabelledImages;
  /** Images per classify call (the classifier chunks further by its batch size). Default 64. */
  chunkSize?: number;
  /** Evaluate only the first `limit` images. */
  limit?: number;
  onProgress?: (event: EvaluateProgress) => void;
  signal?: AbortSignal;
}

export interface ConfusedPair {
  actual: string;
  predicted: string;
  count: number;
}

export interface EvaluationResult {
  images: number;
  correct: number;
  /** correct / images, in [0, 1]. */
  accuracy: number;
  perClass: { className: string; images: number; correct: number; accuracy: number }[];
  /** The most frequent wrong (actual -> predicted) pairs, most frequent first (at most 10). */
  topConfusions: ConfusedPair[];
  /** Confusion counts [actual][predicted]. */
  confusion: number[][];
  /** Predicted label per image, in item order. */
  predictions: Int32Array;
  seconds: number;
}

export async function evaluateImageFolder(options: EvaluateImageFolderOptions): Promise<EvaluationResult> {
  const { classifier } = options;
  const started = performance.now();
  const classes = classifier.classNames.length;
  const data = alignToClasses(options.data, classifier.classNames);
  const items = data.items.slice(0, options.limit ?? data.items.length);
  if (items.length === 0)
    throw new UnmaskError("DATA_NOT_FOUND", `${data.root}: no images`, { subject: data.root });
  const chunk = Math.max(1, options.chunkSize ?? 64);
  const predictions = new Int32Array(items.length);
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let start = 0; start < items.length; start += chunk) {
    options.signal?.throwIfAborted();
    const slice = items.slice(start, start + chunk);
    const results = await classifier.classify(
      slice.map((i) => i.path),
      { topK: 1 },
    );
    results.forEach((r, i) => {
      predictions[start + i] = r.index;
      confusion[slice[i].label][r.index]++;
    });
    options.onProgress?.({ status: "images", done: start + slice.length, total: items.length });
  }
  let correct = 0;
  const perClass = classifier.classNames.map((className, c) => {
    const images = confusion[c].reduce((a, b) => a + b, 0);
    correct += confusion[c][c];
    return {
      className,
      images,
      correct: confusion[c][c],
      accuracy: images === 0 ? 0 : confusion[c][c] / images,
    };
  });
  const pairs: ConfusedPair[] = [];
  for (let a = 0; a < classes; a++)
    for (let p = 0; p < classes; p++)
      if (a !== p && confusion[a][p] > 0)
        pairs.push({
          actual: classifier.classNames[a],
          predicted: classifier.classNames[p],
          count: confusion[a][p],
        });
  pairs.sort(
    (x, y) =>
      y.count - x.count || compareCodeUnits(x.actual, y.actual) || compareCodeUnits(x.predicted, y.predicted),
  );
  return {
    images: items.length,
    correct,
    accuracy: correct / items.length,
    perClass,
    topConfusions: pairs.slice(0, 10),
    confusion,
    predictions,
    seconds: (performance.now() - started) / 1000,
  };
}
