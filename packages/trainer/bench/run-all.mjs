// Runs every bench/*.mjs of the package, one after the other (they are timing-sensitive), after
// `pnpm build`. Benches whose name mentions cuda or gpu run only where an NVIDIA device is present.
//   node bench/run-all.mjs [name-filter]
// UNMASK_BENCH_SKIP=a.mjs,b.mjs skips files by name.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2] ?? "";
const skip = new Set((process.env.UNMASK_BENCH_SKIP ?? "").split(",").filter(Boolean));
const hasGpu = existsSync("/dev/nvidiactl") || existsSync("/dev/nvidia0");
let failed = 0;
for (const file of readdirSync(here).sort()) {
  if (!file.endsWith(".mjs") || file === "run-all.mjs" || !file.includes(filter)) continue;
  if (skip.has(file)) continue;
  if (/cuda|gpu/i.test(file) && !hasGpu) {
    console.log(`== ${file}: skipped (no NVIDIA device)`);
    continue;
  }
  console.log(`== ${file}`);
  const run = spawnSync(process.execPath, [join(here, file)], { stdio: "inherit" });
  if (run.status !== 0) {
    failed++;
    console.log(`== ${file}: exit ${run.status}`);
  }
}
process.exitCode = failed ? 1 : 0;
