/**
 * An image folder dataset, torchvision's ImageFolder convention: one subfolder per class, the
 * classes in sorted folder-name order give the labels 0..C-1, images anywhere below a class folder
 * (walked recursively, sorted). Class names are the folder names; prompt-time cleaning
 * (underscores to spaces, lowercase) happens when the text features are built.
 */
import { relative, sep } from "node:path";
import { IMAGE_EXTENSIONS, listClassImages } from "@unmask/clip";
import type { Dataset, DatasetItem } from "./dataset.js";

/** File endings taken as images (what sharp decodes; the list lives in @unmask/clip). */
export { IMAGE_EXTENSIONS };

export interface ImageFolderOptions {
  /** The folder holding one subfolder per class. */
  root: string;
  /** Item ids are paths relative to this folder (default: `root`); e.g. the `--data` folder. */
  idRoot?: string;
}

export function toPosixPath(path: string): string {
  return sep === "/" ? path : path.split(sep).join("/");
}

/**
 * Lists an image folder. Throws DATA_NOT_FOUND when `root` is missing, NO_CLASSES when it has no
 * class subfolders, EMPTY_CLASS naming a class folder without images.
 */
export async function loadImageFolder(options: ImageFolderOptions): Promise<Dataset> {
  const { root } = options;
  const idRoot = options.idRoot ?? root;
  const { classNames, items: files } = await listClassImages(root);
  const items: DatasetItem[] = files.map(({ path, label }) => ({
    id: toPosixPath(relative(idRoot, path)),
    label,
    source: path,
  }));
  return { classNames, items, root: idRoot, description: `image folder ${root}` };
}
