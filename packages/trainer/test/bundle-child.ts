/**
 * Test helper: bundles a TypeScript snippet (imports resolved from `resolveDir`, npm packages
 * left external) into an .mjs file under node_modules/.cache, so a test can run it as a child
 * process with plain `node` (tests run on the sources, children cannot import .ts).
 */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

export async function bundleChild(source: string, resolveDir: string): Promise<string> {
  const dir = join(packageRoot, "node_modules", ".cache", "unmask-test-children");
  mkdirSync(dir, { recursive: true });
  const name = createHash("sha256").update(resolveDir).update(source).digest("hex").slice(0, 16);
  const outfile = join(dir, `${name}.mjs`);
  await build({
    stdin: { contents: source, resolveDir, loader: "ts", sourcefile: `${name}.ts` },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outfile,
    logLevel: "silent",
  });
  return outfile;
}
