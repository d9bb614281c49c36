// A trainer source file as it was at a git revision, compiled with esbuild into a temp folder with
// its imports pointed at this build (dist/ for relative ones, the resolved package for @unmask/*),
// so a bench can time "before" and "after" in one run. The file's dependencies are this build's:
// meaningful while their exports and behaviour are unchanged since `revision`.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { transform } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "../../dist");

/** Imports `src/<path>` (e.g. "data/image-cache.ts") of the trainer at `revision`. */
export async function importAtRevision(revision, path) {
  const source = execFileSync("git", ["show", `${revision}:packages/trainer/src/${path}`], {
    cwd: here,
    encoding: "utf8",
  });
  const { code } = await transform(source, { loader: "ts", format: "esm" });
  const folder = posix.dirname(path);
  const rewritten = code
    .replace(/from "(\.\.?\/.+?)"/g, (_, relative) => {
      const target = join(dist, folder, relative);
      return `from "${pathToFileURL(target).href}"`;
    })
    .replace(/from "(@unmask\/[a-z-]+)"/g, (_, name) => `from "${import.meta.resolve(name)}"`);
  const file = join(mkdtempSync(join(tmpdir(), "unmask-baseline-")), `${path.replace(/[/.]/g, "-")}.mjs`);
  writeFileSync(file, rewritten);
  return import(pathToFileURL(file).href);
}
