import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCoopSplit, parseCoopSplit } from "./coop-split.js";
import { countPerClass } from "./dataset.js";
import {
  fileListSha256,
  parseTrainList,
  readTrainList,
  sampleFewShot,
  selectTrainList,
  writeTrainList,
} from "./few-shot.js";
import { loadImageFolder } from "./image-folder.js";
import { inMemoryDataset } from "./in-memory.js";
import { resolveData } from "./resolve.js";

let root: string;

async function png(path: string, value: number, width = 6, height = 4): Promise<void> {
  const pixels = Buffer.alloc(width * height * 3, value);
  await sharp(pixels, { raw: { width, height, channels: 3 } })
    .png()
    .toFile(path);
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "unmask-data-"));
  // classes deliberately created out of order; one nested subfolder; one non-image file
  for (const [cls, n] of [
    ["sneaker", 5],
    ["ankle_boot", 3],
    ["T-shirt", 7],
  ] as const) {
    mkdirSync(join(root, "train", cls, "more"), { recursive: true });
    for (let i = 0; i < n; i++) await png(join(root, "train", cls, `${String(i).padStart(4, "0")}.png`), i);
    await png(join(root, "train", cls, "more", "extra.png"), 9);
    writeFileSync(join(root, "train", cls, "notes.txt"), "not an image");
  }
  mkdirSync(join(root, "empty", "a"), { recursive: true });
});

describe("image folder", () => {
  it("labels classes in sorted folder order and ids relative to the id root", async () => {
    const ds = await loadImageFolder({ root: join(root, "train"), idRoot: root });
    expect(ds.classNames).toEqual(["T-shirt", "ankle_boot", "sneaker"]);
    expect(countPerClass(ds)).toEqual([8, 4, 6]);
    expect(ds.items[0]).toMatchObject({ id: "train/T-shirt/0000.png", label: 0 });
    expect(ds.items[7]).toMatchObject({ id: "train/T-shirt/more/extra.png", label: 0 });
    expect(ds.items[8].source).toBe(join(root, "train", "ankle_boot", "0000.png"));
  });

  it("names the folder when there is nothing to load", async () => {
    await expect(loadImageFolder({ root: join(root, "nope") })).rejects.toMatchObject({
      code: "DATA_NOT_FOUND",
    });
    await expect(loadImageFolder({ root: join(root, "empty") })).rejects.toMatchObject({
      code: "EMPTY_CLASS",
    });
    await expect(loadImageFolder({ root: join(root, "empty", "a") })).rejects.toMatchObject({
      code: "NO_CLASSES",
    });
  });
});

describe("few-shot sampling and train lists", () => {
  it("takes K per class (all of a smaller class), seeded", async () => {
    const ds = await loadImageFolder({ root: join(root, "train"), idRoot: root });
    const a = sampleFewShot({ dataset: ds, shots: 5, seed: 1 });
    const b = sampleFewShot({ dataset: ds, shots: 5, seed: 1 });
    const c = sampleFewShot({ dataset: ds, shots: 5, seed: 2 });
    expect(a.map((i) => i.id)).toEqual(b.map((i) => i.id));
    expect(a.map((i) => i.id)).not.toEqual(c.map((i) => i.id));
    expect(a.map((i) => i.label)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    expect(new Set(a.map((i) => i.id)).size).toBe(14);
    expect(() => sampleFewShot({ dataset: ds, shots: 0, seed: 1 })).toThrow(/shots/);
  });

  it("round-trips a file list through JSON to the same items", async () => {
    const ds = await loadImageFolder({ root: join(root, "train"), idRoot: root });
    const chosen = sampleFewShot({ dataset: ds, shots: 2, seed: 3 });
    const file = join(root, "list.json");
    await writeTrainList(file, { shots: 2, seed: 3, train: chosen.map((i) => i.id) });
    const list = await readTrainList(file);
    expect(list.shots).toBe(2);
    expect(list.seed).toBe(3);
    expect(selectTrainList(ds, list)).toEqual(chosen);
    expect(fileListSha256(list.train)).toBe(fileListSha256(chosen.map((i) => i.id)));
    expect(fileListSha256(list.train)).toMatch(/^[0-9a-f]{64}$/);
    // a Python-made list may spell paths with ./ or backslashes
    const spelled = parseTrainList({ train: [`./${chosen[0].id}`, chosen[1].id.replaceAll("/", "\\")] }, "x");
    expect(selectTrainList(ds, spelled)).toEqual(chosen.slice(0, 2));
  });

  it("refuses lists naming files the dataset lacks, duplicates and hostile paths", async () => {
    const ds = await loadImageFolder({ root: join(root, "train"), idRoot: root });
    expect(() => selectTrainList(ds, { train: ["train/sneaker/9999.png"] }, "l.json")).toThrow(
      /train\/sneaker\/9999.png/,
    );
    expect(() => parseTrainList({ train: ["a.png", "./a.png"] }, "l")).toThrow(/twice/);
    expect(() => parseTrainList({ train: ["../../etc/passwd"] }, "l")).toThrow(/leaves/);
    expect(() => parseTrainList({ train: [] }, "l")).toThrow(/empty/);
    expect(() => parseTrainList({ train: "a.png" }, "l")).toThrow(/list/);
    expect(() => parseTrainList([1], "l")).toThrow(/object/);
    await expect(readTrainList(join(root, "missing.json"))).rejects.toMatchObject({ code: "FILE_NOT_FOUND" });
  });
});

describe("CoOp split", () => {
  it("reads a split, finds the image folder and names classes by label", async () => {
    const base = join(root, "coop");
    mkdirSync(join(base, "images", "x"), { recursive: true });
    await png(join(base, "images", "x", "a.png"), 1);
    await png(join(base, "images", "x", "b.png"), 2);
    const file = join(base, "split_zhou_Test.json");
    writeFileSync(
      file,
      JSON.stringify({
        train: [
          ["x/a.png", 1, "red panda"],
          ["x/b.png", 0, "cat"],
        ],
        val: [],
        test: [["x/b.png", 0, "cat"]],
      }),
    );
    const train = await loadCoopSplit({ file, split: "train" });
    expect(train.classNames).toEqual(["cat", "red panda"]);
    expect(train.root).toBe(join(base, "images"));
    expect(train.items).toEqual([
      { id: "x/a.png", label: 1, source: join(base, "images", "x", "a.png") },
      { id: "x/b.png", label: 0, source: join(base, "images", "x", "b.png") },
    ]);
    const test = await loadCoopSplit({ file, split: "test" });
    expect(test.items.length).toBe(1);
    await expect(loadCoopSplit({ file, split: "val" })).rejects.toMatchObject({ code: "BAD_SPLIT_FILE" });
  });

  it("rejects malformed and hostile entries naming the entry", () => {
    const f = "s.json";
    expect(() => parseCoopSplit([], f)).toThrow(/object/);
    expect(() => parseCoopSplit({ train: {} }, f)).toThrow(/train must be a list/);
    expect(() => parseCoopSplit({ train: [["a", 0]] }, f)).toThrow(/train\[0\]/);
    expect(() => parseCoopSplit({ train: [["a", -1, "x"]] }, f)).toThrow(/train\[0\]: label/);
    expect(() => parseCoopSplit({ train: [["a", 1e9, "x"]] }, f)).toThrow(/label/);
    expect(() => parseCoopSplit({ test: [["../../x", 0, "x"]] }, f)).toThrow(/test\[0\].*leaves/);
    expect(() => parseCoopSplit({ test: [["/abs", 0, "x"]] }, f)).toThrow(/leaves/);
  });
});

describe("in-memory dataset", () => {
  it("checks sizes and labels", () => {
    const img = { width: 2, height: 2, channels: 3, data: new Uint8Array(12), label: 1 };
    const ds = inMemoryDataset({ classNames: ["a", "b"], images: [img, { ...img, label: 0 }] });
    expect(ds.items.map((i) => [i.id, i.label])).toEqual([
      ["memory:0", 1],
      ["memory:1", 0],
    ]);
    expect(() => inMemoryDataset({ classNames: ["a"], images: [img] })).toThrow(/in-memory image 0: label/);
    expect(() => inMemoryDataset({ classNames: ["a", "b"], images: [{ ...img, width: 3 }] })).toThrow(
      /do not match/,
    );
  });
});

describe("resolveData", () => {
  it("reads a train/test layout, a plain class folder and aligns a separate test folder by name", async () => {
    const base = join(root, "layout");
    for (const [split, classes] of [
      ["train", ["b_cls", "a_cls"]],
      ["test", ["a_cls", "b_cls"]],
    ] as const)
      for (const cls of classes) {
        mkdirSync(join(base, split, cls), { recursive: true });
        await png(join(base, split, cls, "0.png"), 3);
      }
    const both = await resolveData({ data: base });
    expect(both.train.items.map((i) => i.id)).toEqual(["train/a_cls/0.png", "train/b_cls/0.png"]);
    expect(both.test?.items.map((i) => [i.id, i.label])).toEqual([
      ["test/a_cls/0.png", 0],
      ["test/b_cls/0.png", 1],
    ]);
    const plain = await resolveData({ data: join(base, "train") });
    expect(plain.test).toBeNull();
    expect(plain.train.items[0].id).toBe("a_cls/0.png");
    // a test folder holding only some classes, in another order, lines up by name
    mkdirSync(join(base, "other", "b_cls"), { recursive: true });
    await png(join(base, "other", "b_cls", "x.png"), 1);
    const other = await resolveData({ data: join(base, "train"), testData: join(base, "other") });
    expect(other.test?.items.map((i) => i.label)).toEqual([1]);
    mkdirSync(join(base, "alien", "zebra"), { recursive: true });
    await png(join(base, "alien", "zebra", "x.png"), 1);
    await expect(resolveData({ data: base, testData: join(base, "alien") })).rejects.toMatchObject({
      code: "CLASS_MISMATCH",
    });
    await expect(resolveData({ data: join(base, "missing") })).rejects.toMatchObject({
      code: "DATA_NOT_FOUND",
    });
  });
});
