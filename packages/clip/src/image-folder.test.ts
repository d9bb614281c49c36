import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compareCodeUnits, listClassImages, listImageFiles, listSubfolders } from "./image-folder.js";

const dir = mkdtempSync(join(tmpdir(), "unmask-image-folder-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function touch(...parts: string[]): void {
  const path = join(dir, ...parts);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, "");
}

async function codeOf(run: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await run();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe("image folder listing", () => {
  touch("pets", "dog", "b.JPG");
  touch("pets", "dog", "a.png");
  touch("pets", "dog", "nested", "c.webp");
  touch("pets", "dog", "notes.txt");
  touch("pets", "dog", ".hidden.png");
  touch("pets", "Cat", "z.jpeg");
  touch("pets", ".cache", "x.png");
  touch("pets", "readme.md");

  it("sorts classes and images by code units, walks subfolders, skips dot-files and non-images", async () => {
    const root = join(dir, "pets");
    expect(await listSubfolders(root)).toEqual(["Cat", "dog"]);
    expect(await listImageFiles(join(root, "dog"))).toEqual([
      join(root, "dog", "a.png"),
      join(root, "dog", "b.JPG"),
      join(root, "dog", "nested", "c.webp"),
    ]);
    const listed = await listClassImages(root);
    expect(listed.classNames).toEqual(["Cat", "dog"]);
    expect(listed.items.map((i) => [i.label, i.path.slice(root.length + 1)])).toEqual([
      [0, join("Cat", "z.jpeg")],
      [1, join("dog", "a.png")],
      [1, join("dog", "b.JPG")],
      [1, join("dog", "nested", "c.webp")],
    ]);
    expect(["b", "B", "a", "é"].sort(compareCodeUnits)).toEqual(["B", "a", "b", "é"]);
  });

  it("names what is wrong: a missing folder, no classes, an empty class", async () => {
    touch("flat", "image.png");
    touch("empty-class", "full", "a.png");
    mkdirSync(join(dir, "empty-class", "void"));
    expect(await codeOf(() => listClassImages(join(dir, "missing")))).toBe("DATA_NOT_FOUND");
    expect(await codeOf(() => listClassImages(join(dir, "flat", "image.png")))).toBe("DATA_NOT_FOUND");
    expect(await codeOf(() => listClassImages(join(dir, "flat")))).toBe("NO_CLASSES");
    await expect(listClassImages(join(dir, "empty-class"))).rejects.toMatchObject({
      code: "EMPTY_CLASS",
      message: `${join(dir, "empty-class", "void")}: class folder holds no images`,
    });
  });
});
