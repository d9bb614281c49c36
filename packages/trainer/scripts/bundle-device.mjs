#!/usr/bin/env node
// Bundles the device entry (bench/device/main.ts) with esbuild into <repo>/.gpu/, beside the
// fatbin, koffi (kept external: it finds its native module next to its own package) and the
// tiny fixture, so that a GPU machine with only a node binary can run it:
//   .gpu/main.mjs, .gpu/unmask.fatbin, .gpu/node_modules/{koffi,@koromix/koffi-linux-x64},
//   .gpu/fixtures/tiny-vit-p8/{hf/model.safetensors,rmt_step.safetensors}
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { encodeSafetensors, parseSafetensors, planFromHf } from "@unmask/clip";
import { build } from "esbuild";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const repo = join(pkg, "..", "..");
const out = join(repo, ".gpu");
mkdirSync(out, { recursive: true });
rmSync(join(out, "node_modules"), { recursive: true, force: true });
rmSync(join(out, "fixtures"), { recursive: true, force: true });
await build({
  entryPoints: [join(pkg, "bench", "device", "main.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outfile: join(out, "main.mjs"),
  external: ["koffi"],
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  logLevel: "warning",
});
// the full-run entry (train() + convert()): sharp (image decoding) is replaced by a stub that
// throws, since the device gets its images already decoded (bench/device/prep-fashion.mjs)
await build({
  entryPoints: [join(pkg, "bench", "device", "full-run.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outfile: join(out, "run", "full.mjs"), // clip finds its BPE vocabulary at ../assets
  external: ["koffi", "onnxruntime-node"],
  plugins: [
    {
      name: "no-sharp",
      setup(b) {
        b.onResolve({ filter: /^sharp$/ }, () => ({ path: "sharp", namespace: "stub" }));
        b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
          contents: "export default function sharp() { throw new Error('sharp is not on this machine'); }",
          loader: "js",
        }));
      },
    },
  ],
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  logLevel: "warning",
});
const vocab = "bpe_simple_vocab_16e6.txt.gz";
cpSync(join(pkg, "..", "clip", "assets", vocab), join(out, "assets", vocab));
cpSync(join(pkg, "kernels", "unmask.fatbin"), join(out, "unmask.fatbin"));
// only what koffi's ESM entry loads: the device's working tree is size-limited
const koffiDir = realpathSync(join(pkg, "node_modules", "koffi"));
const nm = join(out, "node_modules");
for (const f of ["package.json", "index.js", "src/koffi/index.js", "src/koffi/src/static.js"])
  cpSync(join(koffiDir, f), join(nm, "koffi", f));
const nativeDir = realpathSync(join(koffiDir, "..", "@koromix", "koffi-linux-x64"));
for (const f of ["package.json", "index.js", "linux_x64/koffi.node"])
  cpSync(join(nativeDir, f), join(nm, "@koromix", "koffi-linux-x64", f));

const fixtures = process.env.UNMASK_FIXTURES ?? "/work/shared/fixtures";
const tiny = join(fixtures, "tiny-vit-p8");
if (existsSync(tiny)) {
  // the vision tower and logit_scale only, under canonical names (the text tower is most of the file)
  const hf = parseSafetensors(new Uint8Array(readFileSync(join(tiny, "hf", "model.safetensors"))));
  const bytesOf = (n) => {
    const e = hf.tensors.get(n);
    return { e, data: hf.bytes.subarray(e.fileOffset, e.fileOffset + e.byteLength) };
  };
  const keep = [];
  for (const [key, p] of planFromHf(hf.tensors.keys())) {
    if (!key.startsWith("visual.") && key !== "logit_scale") continue;
    if (p.op === "copy") {
      const { e, data } = bytesOf(p.from);
      keep.push({ name: key, dtype: e.dtype, shape: e.shape, data });
    } else if (p.op === "concat-rows") {
      const parts = p.from.map(bytesOf);
      const data = new Uint8Array(parts.reduce((n, x) => n + x.data.length, 0));
      let o = 0;
      for (const x of parts) {
        data.set(x.data, o);
        o += x.data.length;
      }
      const shape = [parts.reduce((n, x) => n + x.e.shape[0], 0), ...parts[0].e.shape.slice(1)];
      keep.push({ name: key, dtype: parts[0].e.dtype, shape, data });
    } else {
      const { e, data } = bytesOf(p.from);
      const [r, c] = e.shape;
      const w = data.length / (r * c);
      const t = new Uint8Array(data.length);
      for (let i = 0; i < r; i++)
        for (let j = 0; j < c; j++)
          t.set(data.subarray((i * c + j) * w, (i * c + j + 1) * w), (j * r + i) * w);
      keep.push({ name: key, dtype: e.dtype, shape: [c, r], data: t });
    }
  }
  const dir = join(out, "fixtures", "tiny-vit-p8");
  mkdirSync(join(dir, "hf"), { recursive: true });
  writeFileSync(join(dir, "hf", "model.safetensors"), encodeSafetensors(keep));
  cpSync(join(tiny, "rmt_step.safetensors"), join(dir, "rmt_step.safetensors"));
}
console.log(`bundle-device: wrote ${out}`);
