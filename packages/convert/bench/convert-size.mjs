// Conversion speed and memory on a checkpoint of real size.
//
// Writes a ViT-B/16-shaped TorchScript archive (fp16, random weights, ~300 MB) to the OS temp
// dir with the package's own test writer, then compares:
//   - `cp` of the file (warm page cache; also cp + `sync FILE`, since convert() fsyncs its output)
//     vs convert() (weights only, no ONNX), RUNS (default 9) alternating runs each, min and median,
//     (convert() is timed inside its child process: process start and imports are not counted),
//   - phase marks of convert() from its progress events (source opened, copied, hashed),
//   - peak RSS of a child process that runs one conversion (process.resourceUsage().maxRSS)
//     vs the file size.
// Targets (issue 3): conversion <= 2x the copy time, peak RSS <= 1.5x the file size.
// Usage: pnpm --filter @unmask/convert build && node packages/convert/bench/convert-size.mjs
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { convert } from "@unmask/convert";
import { VIT_B16_CONFIG, vitTensorShapes, writeTorchArchive } from "@unmask/convert/testing";

const CHILD = process.argv[2] === "--child";
const RUNS = Number(process.env.RUNS ?? 9);

async function child(input, out) {
  const started = performance.now();
  // Phase marks (ms from the call): source opened, hash finished, last tensor written.
  const phases = {};
  const mark = (name) => {
    phases[name] ??= performance.now() - started;
  };
  await convert(input, out, {
    onnx: false,
    onProgress: (e) => {
      if (e.status === "read-header") mark("opened");
      else if (e.status === "hashing" && e.bytesDone === e.bytesTotal) mark("hashed");
      else if (e.status === "tensor" && e.index === e.count - 1) mark("copied");
    },
  });
  const ms = performance.now() - started;
  process.stdout.write(JSON.stringify({ ms, phases, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
}

/** Random fp16 bits in (-2, 2): no infinities or NaNs. xorshift32, seeded per tensor. */
function randomHalf(numel, seed) {
  const out = new Uint16Array(numel);
  let x = seed | 1;
  for (let i = 0; i < numel; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x & 0x8000) | (x & 0x3fff);
  }
  return new Uint8Array(out.buffer);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "unmask-convert-bench-"));
  try {
    const tensors = [...vitTensorShapes(VIT_B16_CONFIG)].map(([name, shape], i) => ({
      name,
      dtype: "F16",
      shape,
      data: () =>
        randomHalf(
          shape.reduce((a, b) => a * b, 1),
          i + 1,
        ),
    }));
    // OpenAI's archives also carry these int64 scalars; the converter drops them.
    for (const name of ["input_resolution", "context_length", "vocab_size"])
      tensors.push({ name, dtype: "I64", shape: [], data: new Uint8Array(8) });
    const input = join(dir, "ViT-B-16-shaped.pt");
    await writeTorchArchive(input, { layout: "torchscript", archiveName: "ViT-B-16", tensors });
    const fileBytes = statSync(input).size;
    console.log(
      `load average: ${loadavg()
        .map((x) => x.toFixed(2))
        .join(", ")}`,
    );
    console.log(`checkpoint: ${input} (${mb(fileBytes)}, ${tensors.length} tensors, TorchScript layout)`);

    execFileSync("cp", [input, join(dir, "warm.pt")]); // warm the page cache
    rmSync(join(dir, "warm.pt"));
    // Alternate cp and convert so that load from other processes hits both alike.
    const copyMs = [];
    const copySyncMs = [];
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      const target = join(dir, `copy-${i}.pt`);
      let t = performance.now();
      execFileSync("cp", [input, target]);
      copyMs.push(performance.now() - t);
      t = performance.now();
      execFileSync("sync", [target]); // convert() fsyncs its output; cp alone does not
      copySyncMs.push(copyMs[i] + performance.now() - t);
      rmSync(target);
      const out = join(dir, `out-${i}`);
      const json = execFileSync(
        process.execPath,
        [new URL(import.meta.url).pathname, "--child", input, out],
        {
          encoding: "utf8",
        },
      );
      runs.push(JSON.parse(json));
      rmSync(out, { recursive: true, force: true });
    }
    const convertMs = runs.map((r) => r.ms);
    const rss = Math.max(...runs.map((r) => r.maxRssBytes));
    const line = (label, xs) =>
      `${label} min ${Math.min(...xs).toFixed(0)} ms, median ${median(xs).toFixed(0)} ms  (${xs.map((m) => m.toFixed(0)).join(", ")})`;
    console.log(line("cp:              ", copyMs));
    console.log(line("cp + sync FILE:  ", copySyncMs));
    console.log(line("convert():       ", convertMs));
    const phase = (name) => median(runs.map((r) => r.phases[name])).toFixed(0);
    console.log(
      `convert() phases (median ms from the call): source opened ${phase("opened")}, tensors copied ${phase("copied")}, ` +
        `source hashed ${phase("hashed")}, done (fsynced, renamed) ${median(convertMs).toFixed(0)}`,
    );
    console.log(
      `convert / cp: ${(Math.min(...convertMs) / Math.min(...copyMs)).toFixed(2)}x (min), ${(median(convertMs) / median(copyMs)).toFixed(2)}x (median); ` +
        `convert / (cp + sync): ${(Math.min(...convertMs) / Math.min(...copySyncMs)).toFixed(2)}x (min), ${(median(convertMs) / median(copySyncMs)).toFixed(2)}x (median)  [target <= 2x]`,
    );
    console.log(
      `peak RSS of convert(): ${mb(rss)} = ${(rss / fileBytes).toFixed(2)}x the file  [target <= 1.5x]`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (CHILD) await child(process.argv[3], process.argv[4]);
else await main();
