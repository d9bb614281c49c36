/**
 * CoOp split files (`split_zhou_<Name>.json`, docs/rmt-method.md section 8):
 * `{"train": [...], "val": [...], "test": [...]}`, each entry `[path relative to the image dir,
 * 0-based label, class name]`. The class list is the union over all splits (label -> name, the
 * names already cleaned by CoOp), so train and test share labels.
 *
 * The image dir differs per dataset (`images`, `jpg`, `2750`, the split's own folder...): when not
 * given, it is found by looking for the first entry's file beside the split file, then in each
 * subfolder of the split file's folder.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import { UnmaskError } from "@unmask/clip";
import { compareCodeUnits, type Dataset } from "./dataset.js";

export type SplitName = "train" | "val" | "test";

/** A split file is JSON text; the largest real one (ImageNet-scale) is tens of MB. */
export const MAX_SPLIT_FILE_BYTES = 512 * 1024 * 1024;
/** More classes than any CLIP benchmark (ImageNet-21k has 21,841): a guard against garbage labels. */
export const MAX_CLASSES = 100_000;

export interface CoopSplitOptions {
  /** Path of the split JSON. */
  file: string;
  split: SplitName;
  /** Folder the entry paths are relative to; found automatically when omitted. */
  imageDir?: string;
}

type Entry = [string, number, string];

function bad(file: string, message: string, subject = file): never {
  throw new UnmaskError("BAD_SPLIT_FILE", `${file}: ${message}`, { subject });
}

/** Validates the parsed JSON of a split file and returns its splits. Exported for tests. */
export function parseCoopSplit(json: unknown, file: string): Record<SplitName, Entry[]> {
  if (typeof json !== "object" || json === null || Array.isArray(json)) bad(file, "not a JSON object");
  const out = {} as Record<SplitName, Entry[]>;
  for (const split of ["train", "val", "test"] as const) {
    const list = (json as Record<string, unknown>)[split];
    if (list === undefined) {
      out[split] = [];
      continue;
    }
    if (!Array.isArray(list)) bad(file, `field ${split} must be a list`, split);
    out[split] = list.map((entry, i): Entry => {
      const where = `${split}[${i}]`;
      if (!Array.isArray(entry) || entry.length !== 3)
        bad(file, `${where} must be [path, label, classname]`, where);
      const [path, label, name] = entry as unknown[];
      if (typeof path !== "string" || path.length === 0) bad(file, `${where}: path must be a string`, where);
      if (!Number.isInteger(label) || (label as number) < 0 || (label as number) >= MAX_CLASSES)
        bad(file, `${where}: label must be an integer in [0, ${MAX_CLASSES})`, where);
      if (typeof name !== "string") bad(file, `${where}: class name must be a string`, where);
      const normal = posix.normalize(path.replaceAll("\\", "/"));
      if (normal.startsWith("../") || normal.startsWith("/"))
        bad(file, `${where}: path ${path} leaves the image folder`, where);
      return [normal, label as number, name];
    });
  }
  return out;
}

/** Class names by label over all splits; every label 0..C-1 must be named, consistently. */
function classNamesOf(splits: Record<SplitName, Entry[]>, file: string): string[] {
  const names: string[] = [];
  for (const entries of Object.values(splits))
    for (const [, label, name] of entries) {
      if (names[label] === undefined) names[label] = name;
      else if (names[label] !== name)
        bad(file, `label ${label} is named both "${names[label]}" and "${name}"`, `label ${label}`);
    }
  for (let i = 0; i < names.length; i++) if (names[i] === undefined) bad(file, `label ${i} never appears`);
  if (names.length === 0) bad(file, "no entries");
  return names;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

async function findImageDir(file: string, firstPath: string): Promise<string> {
  const base = dirname(file);
  if (await exists(join(base, firstPath))) return base;
  const subfolders = (await readdir(base, { withFileTypes: true }))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort(compareCodeUnits);
  for (const sub of subfolders) if (await exists(join(base, sub, firstPath))) return join(base, sub);
  throw new UnmaskError(
    "DATA_NOT_FOUND",
    `${file}: cannot find ${firstPath} beside the split file or in any of its subfolders; pass the image folder`,
    { subject: firstPath },
  );
}

export async function loadCoopSplit(options: CoopSplitOptions): Promise<Dataset> {
  const { file, split } = options;
  const info = await stat(file).catch(() => null);
  if (!info?.isFile())
    throw new UnmaskError("DATA_NOT_FOUND", `${file}: no such split file`, { subject: file });
  if (info.size > MAX_SPLIT_FILE_BYTES)
    bad(file, `${info.size} bytes exceeds the ${MAX_SPLIT_FILE_BYTES}-byte limit for a split file`);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (cause) {
    bad(file, `not valid JSON (${(cause as Error).message})`);
  }
  const splits = parseCoopSplit(json, file);
  const classNames = classNamesOf(splits, file);
  const entries = splits[split];
  if (entries.length === 0) bad(file, `split ${split} is empty`, split);
  const imageDir = options.imageDir ?? (await findImageDir(file, entries[0][0]));
  return {
    classNames,
    items: entries.map(([path, label]) => ({ id: path, label, source: join(imageDir, path) })),
    root: imageDir,
    description: `CoOp split ${file} (${split})`,
  };
}
