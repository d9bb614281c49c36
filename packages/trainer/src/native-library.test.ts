import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Koffi, type Library, librarySearchDirs, loadFirstLibrary } from "./native-library.js";

const dir = mkdtempSync(join(tmpdir(), "unmask-native-library-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const broken = join(dir, "libbroken.so");
const good = join(dir, "libgood.so");
writeFileSync(broken, "not an ELF file");
writeFileSync(good, "stands in for a library");

/** koffi.load stand-in: the good file and the soname "libloader.so" open, anything else fails. */
const library = { func: () => () => 0 } as unknown as Library;
const fakeKoffi = {
  load(path: string) {
    if (path === good || path === "libloader.so") return library;
    throw new Error(`cannot open ${path}`);
  },
} as unknown as Koffi;

const notFound = (tried: string[]): never => {
  throw Object.assign(new Error("not found"), { tried });
};

describe("librarySearchDirs", () => {
  it("puts `first`, CUDA_PATH, LD_LIBRARY_PATH, then `last`, without duplicates", () => {
    expect(
      librarySearchDirs(
        { CUDA_PATH: "/cuda", LD_LIBRARY_PATH: "/a::/b:/usr/lib64" },
        { first: ["/nccl/lib"], last: ["/usr/lib64", "/usr/local/lib"] },
      ),
    ).toEqual(["/nccl/lib", "/cuda/lib64", "/cuda/lib", "/a", "/b", "/usr/lib64", "/usr/local/lib"]);
    expect(librarySearchDirs({}, {})).toEqual([]);
  });
});

describe("loadFirstLibrary", () => {
  it("skips absent paths, records why a present one failed, and opens the first that loads", () => {
    expect(
      loadFirstLibrary(fakeKoffi, { paths: [join(dir, "absent.so"), broken, good], names: [], notFound }),
    ).toBe(library);
  });

  it("falls back to the loader's search, and hands every path tried to notFound", () => {
    expect(loadFirstLibrary(fakeKoffi, { paths: [broken], names: ["libloader.so"], notFound })).toBe(library);
    let tried: string[] = [];
    try {
      loadFirstLibrary(fakeKoffi, {
        paths: [join(dir, "absent.so"), broken],
        names: ["libother.so"],
        notFound,
      });
    } catch (error) {
      tried = (error as { tried: string[] }).tried;
    }
    expect(tried).toEqual([
      `${join(dir, "absent.so")} (absent)`,
      `${broken} (cannot open ${broken})`,
      "libother.so via the loader (cannot open libother.so)",
    ]);
    expect(() =>
      loadFirstLibrary(fakeKoffi, { paths: [], names: ["libloader.so"], loaderSearch: false, notFound }),
    ).toThrow("not found");
  });
});
