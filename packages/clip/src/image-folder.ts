/**
 * Listing of a labelled image folder, torchvision's ImageFolder convention, shared by the trainer's
 * datasets and infer's evaluation so both see the same images with the same labels: one subfolder
 * per class, classes in sorted (UTF-16 code unit) folder order give the labels 0..C-1, images
 * anywhere below a class folder (walked recursively, sorted), dot-files and dot-folders skipped.
 */
import { readdir, stat } from "node:fs/promises";
import { extname, join } from "node:path";
import { UnmaskError } from "@unmask/mask-format";

/** File endings taken as images (what sharp decodes). */
export const IMAGE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg", ".webp", ".gif", ".tif", ".tiff", ".avif"]);

/** Orders strings by UTF-16 code units (locale-independent, like Python's `sorted`). */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The subfolder names of `folder` (dot-folders skipped), sorted. */
export async function listSubfolders(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith("."))
    .map((e) => e.name)
    .sort(compareCodeUnits);
}

/** Paths of the images anywhere below `folder`, walked recursively in sorted order. */
export async function listImageFiles(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true });
  entries.sort((a, b) => compareCodeUnits(a.name, b.name));
  const out: string[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith(".")) continue;
    const path = join(folder, entry.name);
    if (entry.isDirectory()) out.push(...(await listImageFiles(path)));
    else if (IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) out.push(path);
  }
  return out;
}

export interface ClassImages {
  /** Class folder names; a class's label is its index. */
  classNames: string[];
  /** Every image path with its label, class by class, each class in sorted order. */
  items: { path: string; label: number }[];
}

/**
 * Lists the class subfolders of `root` and their images.
 * @throws UnmaskError DATA_NOT_FOUND (`root` is not a folder), NO_CLASSES (no class subfolders),
 *   EMPTY_CLASS (naming a class folder without images)
 */
export async function listClassImages(root: string): Promise<ClassImages> {
  const info = await stat(root).catch(() => null);
  if (!info?.isDirectory())
    throw new UnmaskError("DATA_NOT_FOUND", `${root}: not a folder of class subfolders`, { subject: root });
  const classNames = await listSubfolders(root);
  if (classNames.length === 0)
    throw new UnmaskError("NO_CLASSES", `${root}: no class subfolders (expected one folder per class)`, {
      subject: root,
    });
  const items: ClassImages["items"] = [];
  for (let label = 0; label < classNames.length; label++) {
    const folder = join(root, classNames[label]);
    const files = await listImageFiles(folder);
    if (files.length === 0)
      throw new UnmaskError("EMPTY_CLASS", `${folder}: class folder holds no images`, { subject: folder });
    for (const file of files) items.push({ path: file, label });
  }
  return { classNames, items };
}
