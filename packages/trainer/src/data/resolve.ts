/**
 * From a `--data PATH` (and an optional `--test-data PATH`) to train and test datasets:
 *
 * - `x.json`: a CoOp split file; train = its train split, test = its test split.
 * - a folder whose subfolders are only `train`, `val`, `test` (the layout of the demo data):
 *   train = the `train` image folder, test = `test` (or `val`), item ids relative to PATH, so a
 *   file list reads `train/<class>/<file>`.
 * - any other folder: an image folder (one subfolder per class); no test set unless given.
 *
 * The test set's labels are remapped onto the training classes by name, so two image folders
 * whose class folders match in any order line up; a test class unknown to training is an error.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { UnmaskError } from "@unmask/clip";
import { loadCoopSplit, type SplitName } from "./coop-split.js";
import type { Dataset } from "./dataset.js";
import { loadImageFolder } from "./image-folder.js";

export interface ResolvedData {
  train: Dataset;
  test: Dataset | null;
}

const SPLIT_FOLDERS = new Set(["train", "val", "test"]);

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isFile() ?? false;
}

async function splitFolders(path: string): Promise<Set<string> | null> {
  const entries = await readdir(path, { withFileTypes: true }).catch(() => null);
  if (!entries)
    throw new UnmaskError("DATA_NOT_FOUND", `${path}: no such data folder or split file`, { subject: path });
  const folders = entries.filter((e) => e.isDirectory() && !e.name.startsWith(".")).map((e) => e.name);
  return folders.includes("train") && folders.every((f) => SPLIT_FOLDERS.has(f)) ? new Set(folders) : null;
}

/** One split of a data path (the fallback when a path has no split layout is the path itself). */
export async function loadDataPath(path: string, split: SplitName): Promise<Dataset | null> {
  if (path.toLowerCase().endsWith(".json") && (await isFile(path)))
    return loadCoopSplit({ file: path, split });
  const splits = await splitFolders(path);
  if (splits) {
    const folder = split === "test" && !splits.has("test") ? "val" : split;
    return splits.has(folder) ? loadImageFolder({ root: join(path, folder), idRoot: path }) : null;
  }
  return split === "train" ? loadImageFolder({ root: path }) : null;
}

/** Relabels `test` onto `classNames` by name. */
export function alignClasses(test: Dataset, classNames: readonly string[]): Dataset {
  if (test.classNames.length === classNames.length && test.classNames.every((c, i) => c === classNames[i]))
    return test;
  const index = new Map(classNames.map((c, i) => [c, i]));
  const map = test.classNames.map((c) => {
    const label = index.get(c);
    if (label === undefined)
      throw new UnmaskError(
        "CLASS_MISMATCH",
        `${test.description}: class "${c}" is not among the training classes (${classNames.join(", ")})`,
        { subject: c },
      );
    return label;
  });
  return {
    ...test,
    classNames: [...classNames],
    items: test.items.map((item) => ({ ...item, label: map[item.label] })),
  };
}

export async function resolveData(options: { data: string; testData?: string }): Promise<ResolvedData> {
  const train = await loadDataPath(options.data, "train");
  if (!train)
    throw new UnmaskError("DATA_NOT_FOUND", `${options.data}: no training images`, { subject: options.data });
  const test = options.testData
    ? await loadDataPath(options.testData, "test").then(
        async (d) => d ?? (await loadImageFolder({ root: options.testData as string })),
      )
    : await loadDataPath(options.data, "test");
  return { train, test: test ? alignClasses(test, train.classNames) : null };
}
