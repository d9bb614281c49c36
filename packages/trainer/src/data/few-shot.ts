/**
 * Few-shot selection and file lists.
 *
 * Sampling (as Dassl's generate_fewshot_dataset, with our own generator): classes in label order;
 * per class, K items drawn without replacement from that class's items in dataset order (a partial
 * Fisher-Yates shuffle on a SeededRandom(seed, "few-shot") stream); a class with fewer than K items
 * gives all of them. The result is a file list that a run records and that `--train-list` brings
 * back: `{ "shots": 16, "seed": 1, "train": ["train/t-shirt/0045.png", ...] }`, paths relative to
 * the data root, the class being each file's parent folder (the format of the Python reference's
 * fewshot-16-seed*.json), so runs sampled elsewhere are reproduced exactly.
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { posix } from "node:path";
import { UnmaskError, writeFileAtomic } from "@unmask/clip";
import type { Dataset, DatasetItem } from "./dataset.js";
import { SeededRandom } from "./random.js";

/** A file list is a few thousand to a few hundred thousand short paths. */
export const MAX_TRAIN_LIST_BYTES = 64 * 1024 * 1024;

export interface TrainList {
  shots?: number;
  seed?: number;
  /** Item ids (paths relative to the data root), in order. */
  train: string[];
}

export interface FewShotOptions {
  dataset: Dataset;
  /** Images per class (K >= 1). */
  shots: number;
  seed: number;
}

export function sampleFewShot(options: FewShotOptions): DatasetItem[] {
  const { dataset, shots, seed } = options;
  if (!Number.isInteger(shots) || shots < 1)
    throw new UnmaskError("BAD_OPTION", `shots ${shots} must be a positive integer`, { subject: "shots" });
  const rng = new SeededRandom(seed, "few-shot");
  const byClass: DatasetItem[][] = dataset.classNames.map(() => []);
  for (const item of dataset.items) byClass[item.label].push(item);
  const chosen: DatasetItem[] = [];
  for (const items of byClass) {
    const pool = [...items];
    const take = Math.min(shots, pool.length);
    for (let i = 0; i < take; i++) {
      const j = i + rng.nextInt(pool.length - i);
      const tmp = pool[i];
      pool[i] = pool[j];
      pool[j] = tmp;
      chosen.push(pool[i]);
    }
  }
  return chosen;
}

function normalizeId(id: string): string {
  const normal = posix.normalize(id.replaceAll("\\", "/"));
  return normal.startsWith("./") ? normal.slice(2) : normal;
}

/** Validates a parsed train list. */
export function parseTrainList(json: unknown, source: string): TrainList {
  const fail = (message: string): never => {
    throw new UnmaskError("BAD_TRAIN_LIST", `${source}: ${message}`, { subject: source });
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("not a JSON object");
  const { train, shots, seed } = json as Record<string, unknown>;
  if (!Array.isArray(train)) fail('field "train" must be a list of paths');
  const list = train as unknown[];
  if (list.length === 0) fail('field "train" is empty');
  const seen = new Set<string>();
  const ids = list.map((p, i) => {
    if (typeof p !== "string" || p.length === 0) fail(`train[${i}] must be a non-empty path`);
    const id = normalizeId(p as string);
    if (id.startsWith("../") || id.startsWith("/")) fail(`train[${i}] ${p} leaves the data folder`);
    if (seen.has(id)) fail(`train[${i}] ${p} is listed twice`);
    seen.add(id);
    return id;
  });
  const out: TrainList = { train: ids };
  if (Number.isInteger(shots)) out.shots = shots as number;
  if (Number.isSafeInteger(seed)) out.seed = seed as number;
  return out;
}

export async function readTrainList(file: string): Promise<TrainList> {
  const info = await stat(file).catch(() => null);
  if (!info?.isFile())
    throw new UnmaskError("FILE_NOT_FOUND", `${file}: no such train list`, { subject: file });
  if (info.size > MAX_TRAIN_LIST_BYTES)
    throw new UnmaskError("BAD_TRAIN_LIST", `${file}: ${info.size} bytes exceeds ${MAX_TRAIN_LIST_BYTES}`, {
      subject: file,
    });
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (cause) {
    throw new UnmaskError("BAD_TRAIN_LIST", `${file}: not valid JSON (${(cause as Error).message})`, {
      subject: file,
      cause,
    });
  }
  return parseTrainList(json, file);
}

export async function writeTrainList(file: string, list: TrainList): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(list, null, 1)}\n`);
}

/**
 * The dataset items a list names, in list order. Throws TRAIN_LIST_MISMATCH naming the first
 * path the dataset does not hold.
 */
export function selectTrainList(dataset: Dataset, list: TrainList, source = "train list"): DatasetItem[] {
  const byId = new Map(dataset.items.map((item) => [normalizeId(item.id), item]));
  return list.train.map((id) => {
    const item = byId.get(normalizeId(id));
    if (!item)
      throw new UnmaskError(
        "TRAIN_LIST_MISMATCH",
        `${source}: ${id} is not an image of ${dataset.description} (paths are relative to ${dataset.root ?? "the data"})`,
        { subject: id },
      );
    return item;
  });
}

/** SHA-256 (hex) of the ids, each followed by "\n", in order: the identity of a training set. */
export function fileListSha256(ids: readonly string[]): string {
  const hash = createHash("sha256");
  for (const id of ids) hash.update(`${id}\n`, "utf8");
  return hash.digest("hex");
}
