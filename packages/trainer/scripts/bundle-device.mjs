#!/usr/bin/env node
// Bundles the device entries (bench/device/{main,full-run,cross-eval,e2e,dp-worker,nccl-worker}.ts
// and src/distributed/train-worker.ts) with esbuild into <repo>/.gpu/,
// beside the fatbin and koffi (kept external: it finds its native module next to its own
// package), so that a GPU machine with only a node binary can run them:
//   .gpu/main.mjs, .gpu/run/{full,e2e,cross-eval,dp-worker,nccl-worker}.mjs, .gpu/run/train-worker.js, .gpu/unmask{,-fp16}.fatbin,
//   .gpu/node_modules/{koffi,@koromix/koffi-linux-x64}, with --sharp also .gpu/sharp.tar.xz.
// The tiny-vit-p8 fixture is not copied: the device unpacks the repository's fixtures bundle
// (fixtures/index.js fixturesRoot()).
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const repo = join(pkg, "..", "..");
const out = join(repo, ".gpu");
mkdirSync(out, { recursive: true });
rmSync(join(out, "node_modules"), { recursive: true, force: true });
rmSync(join(out, "assets"), { recursive: true, force: true }); // a run may have made it a link
rmSync(join(out, "fixtures"), { recursive: true, force: true }); // the device unpacks the repo's bundle
// full.mjs runs without sharp (its datasets are in memory): a stub that throws if called
const noSharp = {
  name: "no-sharp",
  setup(b) {
    b.onResolve({ filter: /^sharp$/ }, () => ({ path: "sharp", namespace: "stub" }));
    b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
      contents: "export default function sharp() { throw new Error('sharp is not on this machine'); }",
      loader: "js",
    }));
  },
};
// One ESM bundle for Node 20. `require` is defined for the CommonJS dependencies bundled in, except
// in libraries (the @unmask/clip bundle), which never call it.
const bundle = (entry, outfile, { external = [], plugins = [], require = true } = {}) =>
  build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    external,
    plugins,
    ...(require && {
      banner: {
        js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
      },
    }),
    logLevel: "warning",
  });
await bundle(join(pkg, "bench", "device", "main.ts"), join(out, "main.mjs"), { external: ["koffi"] });
// the full-run entry (train() + convert()): sharp (image decoding) is replaced by a stub that
// throws, since the device gets its images already decoded (bench/device/prep-fashion.mjs)
// in run/: clip finds its BPE vocabulary at ../assets
for (const [entry, file] of [
  ["full-run.ts", "full.mjs"],
  ["cross-eval.ts", "cross-eval.mjs"],
])
  await bundle(join(pkg, "bench", "device", entry), join(out, "run", file), {
    external: ["koffi", "onnxruntime-node"],
    plugins: [noSharp],
  });
// The image cache's resize workers (src/data/resize-pool.ts) import @unmask/clip by name: a
// bundle of it where the workers look (pure JavaScript resize; sharp stubbed, never called there)
await bundle(
  join(pkg, "..", "clip", "src", "index.ts"),
  join(out, "node_modules", "@unmask", "clip", "index.js"),
  {
    plugins: [noSharp],
    require: false,
  },
);
writeFileSync(
  join(out, "node_modules", "@unmask", "clip", "package.json"),
  JSON.stringify({ name: "@unmask/clip", type: "module", main: "index.js" }),
);
const vocab = "bpe_simple_vocab_16e6.txt.gz";
cpSync(join(pkg, "..", "clip", "assets", vocab), join(out, "assets", vocab));
for (const fatbin of ["unmask.fatbin", "unmask-fp16.fatbin"])
  cpSync(join(pkg, "kernels", fatbin), join(out, fatbin));
// only what koffi's ESM entry loads: the device's working tree is size-limited
const koffiDir = realpathSync(join(pkg, "node_modules", "koffi"));
const nm = join(out, "node_modules");
for (const f of ["package.json", "index.js", "src/koffi/index.js", "src/koffi/src/static.js"])
  cpSync(join(koffiDir, f), join(nm, "koffi", f));
const nativeDir = realpathSync(join(koffiDir, "..", "@koromix", "koffi-linux-x64"));
for (const f of ["package.json", "index.js", "linux_x64/koffi.node"])
  cpSync(join(nativeDir, f), join(nm, "@koromix", "koffi-linux-x64", f));

// the e2e entry (train() on an image folder, sharp decoding): sharp's JS is bundled, its native
// module and libvips (@img/sharp-linux-x64, @img/sharp-libvips-linux-x64) travel as one xz tar
// (libvips compresses from 18 to ~6.6 MB), unpacked on the device into .gpu/node_modules/@img
// beside it, the worker of a several-GPU train() (train-launch.ts starts ./train-worker.js next to
// the bundle that imports it) and the data-parallel checks' worker (main.mjs dpcheck / dpbench)
for (const [entry, file] of [
  [join("bench", "device", "e2e.ts"), "e2e.mjs"],
  [join("src", "distributed", "train-worker.ts"), "train-worker.js"],
  [join("bench", "device", "dp-worker.ts"), "dp-worker.mjs"],
  [join("bench", "device", "nccl-worker.ts"), "nccl-worker.mjs"],
])
  await bundle(join(pkg, entry), join(out, "run", file), {
    external: ["koffi", "onnxruntime-node", "@img/sharp-*"],
  });
if (process.argv.includes("--sharp")) {
  const sharpDir = realpathSync(join(repo, "node_modules", ".pnpm", "node_modules", "sharp"));
  const stage = join(out, "sharp-stage");
  rmSync(stage, { recursive: true, force: true });
  for (const name of ["sharp-linux-x64", "sharp-libvips-linux-x64"]) {
    const from = realpathSync(join(sharpDir, "..", "@img", name));
    cpSync(from, join(stage, "node_modules", "@img", name), { recursive: true, dereference: true });
  }
  execFileSync("sh", [
    "-c",
    `tar -C "${stage}" -cf - node_modules | xz -9 -T0 > "${join(out, "sharp.tar.xz")}"`,
  ]);
  rmSync(stage, { recursive: true, force: true });
}
console.log(`bundle-device: wrote ${out}`);
