// Masked vs unmasked throughput on the ViT-B/16-sized model, same process, interleaved rounds.
//   node bench/throughput.mjs [rounds=4] [batch=8]
// (run bench/session-memory.mjs first: it writes the model dir and masks)
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BaseModel } from "@unmask/infer";

const dir = join(tmpdir(), "unmask-bench-vitb16");
const rounds = Number(process.argv[2] ?? 4);
const batch = Number(process.argv[3] ?? 8);
const pixels = new Float32Array(batch * 3 * 224 * 224).map((_, i) => Math.sin(i) * 0.5);

for (const weightSharing of ["shared-session", "session-per-mask"]) {
  const model = await BaseModel.load({ model: dir, weightSharing });
  const mask = await model.addMask(new Uint8Array(readFileSync(join(dir, "mask1.umask"))));
  const time = { unmasked: 0, masked: 0 };
  await model.encodeImages(pixels, batch); // warm up both
  await model.encodeImages(pixels, batch, mask);
  for (let r = 0; r < rounds; r++)
    for (const kind of r % 2 === 0 ? ["unmasked", "masked"] : ["masked", "unmasked"]) {
      const t = performance.now();
      await model.encodeImages(pixels, batch, kind === "masked" ? mask : null);
      time[kind] += performance.now() - t;
    }
  const ips = (ms) => (rounds * batch) / (ms / 1000);
  const u = ips(time.unmasked);
  const m = ips(time.masked);
  console.log(
    `${weightSharing}: unmasked ${u.toFixed(2)} img/s, masked ${m.toFixed(2)} img/s, masked/unmasked ${(m / u).toFixed(3)} (batch ${batch}, ${rounds} rounds each)`,
  );
  await model.dispose();
}
