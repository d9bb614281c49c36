/**
 * Every publishable package packs into a tarball a user can install: built output with types,
 * the README and CHANGELOG, the assets it reads at run time, no tests, no build leftovers, every `exports` /
 * `bin` target and every relative import of the packed JavaScript inside the tarball, and
 * workspace ranges rewritten to real versions (`pnpm pack`, which `changeset publish` uses; `npm
 * pack` packs the same files but would keep `workspace:^`, so releases go through pnpm).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { repoRoot } from "@unmask/fixtures";
import { describe, expect, it } from "vitest";
import { tempDir } from "./helpers.js";

const packagesDir = join(repoRoot, "packages");
const packages = readdirSync(packagesDir).sort();
const destination = tempDir("pack");

/** Files the package needs at run time besides dist/ (read through import.meta.url paths). */
const RUNTIME_FILES: Record<string, string[]> = {
  unmask: [
    "bin/unmask.js",
    "assets/demo/nano-clip.jit.pt",
    "assets/demo/fashion-mnist/fewshot-16-seed1.json",
    "assets/demo/fashion-mnist/test/trouser/00002.png",
  ],
  "@unmask/clip": ["assets/bpe_simple_vocab_16e6.txt.gz"],
  "@unmask/trainer": ["kernels/unmask.fatbin"],
  "@unmask/mask-format": ["SPEC.md"],
};

interface PackResult {
  name: string;
  version: string;
  filename: string;
  files: { path: string }[];
}

/** Every string target of an exports map (conditions nested at any depth). */
function exportTargets(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (value && typeof value === "object") return Object.values(value).flatMap(exportTargets);
  return [];
}

const RELATIVE_IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.\.?\/[^"']+)["']/g;

describe.each(packages)("packages/%s", (dir) => {
  it("packs with dist, types, README and run-time assets, and no tests", () => {
    const root = join(packagesDir, dir);
    const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
    const output = execFileSync("pnpm", ["pack", "--pack-destination", destination, "--json"], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    const packed = JSON.parse(output) as PackResult;
    const files = new Set(packed.files.map((f) => f.path));
    expect(packed.name).toBe(manifest.name);
    expect(packed.version).toBe(manifest.version);

    expect(files).toContain("package.json");
    expect(files).toContain("README.md");
    expect(files).toContain("CHANGELOG.md");
    for (const f of files) {
      expect(f, "a test file is packed").not.toMatch(/(^|\/)[^/]*\.(test|spec)\.[^/]*$/);
      expect(f, "a build leftover is packed").not.toMatch(/\.tsbuildinfo$/);
      expect(f, "sources are not shipped").not.toMatch(/^src\//);
    }
    const js = [...files].filter((f) => f.startsWith("dist/") && f.endsWith(".js"));
    expect(js.length).toBeGreaterThan(0);
    for (const f of js) expect(files, `${f} has no type declarations`).toContain(f.replace(/\.js$/, ".d.ts"));

    const targets = [
      ...exportTargets(manifest.exports),
      ...(manifest.types ? [manifest.types] : []),
      ...(manifest.main ? [manifest.main] : []),
      ...Object.values<string>(manifest.bin ?? {}),
    ];
    expect(targets.length).toBeGreaterThan(0);
    for (const t of targets) expect(files, `${t} is not packed`).toContain(posix.normalize(t));
    for (const f of RUNTIME_FILES[manifest.name] ?? []) expect(files, `${f} is not packed`).toContain(f);

    // Every relative import of packed JavaScript resolves inside the tarball.
    for (const f of [...js, ...[...files].filter((x) => x.startsWith("bin/"))]) {
      const source = readFileSync(join(root, f), "utf8");
      for (const match of source.matchAll(RELATIVE_IMPORT)) {
        const target = posix.normalize(posix.join(posix.dirname(f), match[1]));
        expect(files, `${f} imports ${match[1]}, which is not packed`).toContain(target);
      }
    }

    // npm packs the same files (its own packer reads the same `files` field).
    const npm = JSON.parse(
      execFileSync("npm", ["pack", "--dry-run", "--json"], {
        cwd: root,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      }),
    ) as { files: { path: string }[] }[];
    expect(npm[0].files.map((f) => f.path).sort()).toEqual([...files].sort());

    // The published package.json names real versions, never workspace ranges.
    const tarball = packed.filename;
    const published = JSON.parse(
      execFileSync("tar", ["-xzOf", tarball, "package/package.json"], { encoding: "utf8" }),
    );
    for (const field of ["dependencies", "peerDependencies", "optionalDependencies"])
      for (const [dep, range] of Object.entries<string>(published[field] ?? {}))
        expect(range, `${field}.${dep}`).not.toMatch(/^workspace:/);
    for (const [dep, range] of Object.entries<string>(manifest.dependencies ?? {}))
      if (range.startsWith("workspace:")) {
        const version = JSON.parse(
          readFileSync(join(root, "node_modules", dep, "package.json"), "utf8"),
        ).version;
        expect(published.dependencies[dep]).toBe(range === "workspace:^" ? `^${version}` : version);
      }
  });
});
