// Session creation with masks on a ViT-B/16-sized model: time, RSS, PSS (smaps_rollup) and peak
// RSS, for each weight-sharing mode, each in a fresh process.
//   node bench/session-memory.mjs            (runs every scenario)
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SafetensorsFile } from "@unmask/clip";
import { BaseModel } from "@unmask/infer";
import { makeMaskBytes, makeVitB16Dir } from "./vit-b16-model.mjs";

const dir = join(tmpdir(), "unmask-bench-vitb16");
const mem = () => {
  const t = readFileSync("/proc/self/smaps_rollup", "utf8");
  const g = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(t)[1]) / 1024;
  return { rssMiB: g("Rss"), pssMiB: g("Pss") };
};

if (process.argv[2] === "--child") {
  const mode = process.argv[3];
  const r = (x) => Math.round(x);
  const out = { mode };
  const t0 = performance.now();
  const model = await BaseModel.load({ model: dir, weightSharing: mode });
  const pixels = new Float32Array(2 * 3 * 224 * 224).fill(0.1);
  await model.encodeImages(pixels, 2); // the zero-shot session, as a server would have
  out.base = { ms: r(performance.now() - t0), ...mem() };
  for (const [i, path] of ["mask1.umask", "mask2.umask"].entries()) {
    const t = performance.now();
    const h = await model.addMask(new Uint8Array(readFileSync(join(dir, path))));
    const created = performance.now() - t;
    await model.encodeImages(pixels, 2, h);
    out[`mask${i + 1}`] = {
      createMs: r(created),
      maskedMiB: +(h.maskedBytes / 2 ** 20).toFixed(1),
      ...mem(),
    };
  }
  out.peakRssMiB = r(process.resourceUsage().maxRSS / 1024);
  await model.dispose();
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}

if (!existsSync(join(dir, "vision.onnx"))) {
  console.log(`writing a random ViT-B/16 model dir to ${dir} ...`);
  await makeVitB16Dir(dir);
}
if (!existsSync(join(dir, "mask2.umask"))) {
  const file = await SafetensorsFile.open(join(dir, "model.safetensors"));
  writeFileSync(join(dir, "mask1.umask"), await makeMaskBytes(file, 1));
  writeFileSync(join(dir, "mask2.umask"), await makeMaskBytes(file, 2));
  await file.close();
}
for (const mode of ["shared-session", "session-per-mask"]) {
  const json = execFileSync(process.execPath, [new URL(import.meta.url).pathname, "--child", mode], {
    encoding: "utf8",
  });
  const o = JSON.parse(json);
  const f = (m) => `RSS ${m.rssMiB.toFixed(0)} MiB, PSS ${m.pssMiB.toFixed(0)} MiB`;
  console.log(`\n${mode}`);
  console.log(`  base model + zero-shot session: ${o.base.ms} ms, ${f(o.base)}`);
  for (const k of ["mask1", "mask2"])
    console.log(
      `  + ${k}: ${o[k].createMs} ms, masked tensors ${o[k].maskedMiB} MiB, ${f(o[k])} (+${(o[k].rssMiB - (k === "mask1" ? o.base : o.mask1).rssMiB).toFixed(0)} MiB RSS, +${(o[k].pssMiB - (k === "mask1" ? o.base : o.mask1).pssMiB).toFixed(0)} MiB PSS)`,
    );
  console.log(`  peak RSS ${o.peakRssMiB} MiB`);
}
