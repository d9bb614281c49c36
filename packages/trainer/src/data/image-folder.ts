/**
 * An image folder dataset, torchvision's ImageFolder convention: one subfolder per class, the
 * classes in sorted folder-name order give the labels 0..C-1, images anywhere below a class folder
 * (walked recursively, sorted). Class names are the folder names; prompt-time cleaning
 * (underscores to spaces, lowercase) happens when the text features are built.
 */
import { readdir, stat } from "node:fs/promises";
import { extname, join, relative, sep } from "node:path";
import { UnmaskError } from "@unmask/clip";
import { compareCodeUnits, type Dataset, type DatasetItem } from "./dataset.js";

/** File endings taken as images (what sharp decodes). */
export const IMAGE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg", ".webp", ".gif", ".tif", ".tiff", ".avif"]);

export interface ImageFolderOptions {
  /** The folder holding one subfolder per class. */
  root: string;
  /** Item ids are paths relative to this folder (default: `root`); e.g. the `--data` folder. */
  idRoot?: string;
}

export function toPosixPath(path: string): string {
  return sep === "/" ? path : path.split(sep).join("/");
}

async function listImages(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true });
  entries.sort((a, b) => compareCodeUnits(a.name, b.name));
  const out: string[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith(".")) continue;
    const path = join(folder, entry.name);
    if (entry.isDirectory()) out.push(...(await listImages(path)));
    else if (IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) out.push(path);
  }
  return out;
}

/**
 * Lists an image folder. Throws DATA_NOT_FOUND when `root` is missing, NO_CLASSES when it has no
 * class subfolders, EMPTY_CLASS naming a class folder without images.
 */
export async function loadImageFolder(options: ImageFolderOptions): Promise<Dataset> {
  const { root } = options;
  const idRoot = options.idRoot ?? root;
  const info = await stat(root).catch(() => null);
  if (!info?.isDirectory())
    throw new UnmaskError("DATA_NOT_FOUND", `${root}: not a folder of class subfolders`, { subject: root });
  const entries = await readdir(root, { withFileTypes: true });
  const classNames = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith("."))
    .map((e) => e.name)
    .sort(compareCodeUnits);
  if (classNames.length === 0)
    throw new UnmaskError("NO_CLASSES", `${root}: no class subfolders (expected one folder per class)`, {
      subject: root,
    });
  const items: DatasetItem[] = [];
  for (let label = 0; label < classNames.length; label++) {
    const folder = join(root, classNames[label]);
    const files = await listImages(folder);
    if (files.length === 0)
      throw new UnmaskError("EMPTY_CLASS", `${folder}: class folder holds no images`, { subject: folder });
    for (const file of files) items.push({ id: toPosixPath(relative(idRoot, file)), label, source: file });
  }
  return { classNames, items, root: idRoot, description: `image folder ${root}` };
}
