// `unmask serve` under load on loopback: 16 concurrent clients for 30 s (argv: clients, seconds,
// mode) sending a mix of valid, corrupt and oversized images and an unknown mask name, while a
// probe GETs /healthz every 50 ms. Reports status counts, p50/p99 latency per kind, any 5xx, and
// the /healthz latency during the load. argv[5] picks the model: "tiny" (default, the fixture;
// runs take about a millisecond) or "vit-b16" (random weights with ViT-B/16's shapes, where a
// run takes long enough to show what inference on the event loop does to /healthz).
//   mode "workers" (default): the CLI, inference on a worker thread (--workers 1).
//   mode "in-process": the same server with in-process classifiers (inference on the event loop),
//   run by this file as a child process, for comparison.
// Bounded: the clients stop after `seconds`, and the server is killed 60 s later at the latest.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "@unmask/clip";
import { convert } from "@unmask/convert";
import { fixturePath } from "@unmask/fixtures";
import { encodeMask, fingerprintTensors } from "@unmask/mask-format";

if (process.argv[2] === "--in-process-server") {
  await inProcessServer(process.argv.slice(3));
} else {
  await main();
}

/** The child of mode "in-process": createInferenceServer over createClassifier, as before workers. */
async function inProcessServer([model, a, b, classList]) {
  const { BaseModel, createClassifier, createInferenceServer } = await import("@unmask/infer");
  const base = await BaseModel.load({ model });
  const classes = classList ? classList.split(",") : undefined;
  const classifiers = new Map([
    ["a", await createClassifier({ model: base, mask: a, maskName: "a", classes })],
    ["b", await createClassifier({ model: base, mask: b, maskName: "b", classes })],
  ]);
  if (classes) classifiers.set("zero-shot", await createClassifier({ model: base, classes }));
  const server = createInferenceServer({ classifiers, limits: { maxBodyBytes: 2_000_000 } });
  const port = await server.listen(0);
  process.stderr.write(`listening on http://127.0.0.1:${port}\n`);
  process.once("SIGTERM", () => server.close().then(() => base.dispose()));
}

/** The tiny fixture model and two masks over it (b masks one tensor fewer). */
async function writeTinyModel(root, model) {
  await convert(fixturePath("tiny-vit-p8/model.jit.pt"), model);
  const file = await SafetensorsFile.open(join(model, "model.safetensors"));
  const names = [0, 1].flatMap((b) => [
    `visual.transformer.resblocks.${b}.attn.in_proj_weight`,
    `visual.transformer.resblocks.${b}.attn.out_proj.weight`,
  ]);
  const fp = [];
  const tensors = [];
  for (const name of names) {
    const e = file.entry(name);
    const numel = e.shape.reduce((a, b) => a * b, 1);
    const bits = new Uint8Array(Math.ceil(numel / 8)).fill(0xff);
    for (let k = 0; k < numel; k += 17) bits[k >> 3] &= ~(0x80 >> (k & 7));
    tensors.push({ name, shape: e.shape, bits });
    fp.push({ name, shape: e.shape, values: await file.readFloat32(name) });
  }
  await file.close();
  const fingerprint = await fingerprintTensors(fp);
  writeFileSync(join(root, "a.umask"), encodeMask({ baseModel: { name: "tiny", fingerprint }, tensors }));
  const fingerprintB = await fingerprintTensors(fp.slice(1));
  writeFileSync(
    join(root, "b.umask"),
    encodeMask({ baseModel: { name: "tiny", fingerprint: fingerprintB }, tensors: tensors.slice(1) }),
  );
}

async function main() {
  const clients = Number(process.argv[2] ?? 16);
  const seconds = Number(process.argv[3] ?? 30);
  const mode = process.argv[4] ?? "workers";
  if (!["workers", "in-process"].includes(mode))
    throw new Error(`mode is workers or in-process, not ${mode}`);
  const root = mkdtempSync(join(tmpdir(), "unmask-serve-bench-"));
  const model = join(root, "model");
  const modelKind = process.argv[5] ?? "tiny";
  if (!["tiny", "vit-b16"].includes(modelKind)) throw new Error(`model is tiny or vit-b16, not ${modelKind}`);
  // vit-b16 has no text tower: its masks carry heads, and there is no zero-shot classifier.
  const classList = modelKind === "tiny" ? "cat,dog,car" : null;
  if (modelKind === "vit-b16") {
    const { makeMaskBytes, makeVitB16Dir } = await import("./vit-b16-model.mjs");
    await makeVitB16Dir(model);
    const file = await SafetensorsFile.open(join(model, "model.safetensors"));
    writeFileSync(join(root, "a.umask"), await makeMaskBytes(file, 1));
    writeFileSync(join(root, "b.umask"), await makeMaskBytes(file, 2));
    await file.close();
  } else await writeTinyModel(root, model);

  const cli = fileURLToPath(new URL("../../cli/bin/unmask.js", import.meta.url));
  if (!existsSync(cli)) throw new Error("build the cli first");
  const args =
    mode === "workers"
      ? [
          cli,
          "serve",
          "--model",
          model,
          "--mask",
          `a=${join(root, "a.umask")}`,
          "--mask",
          `b=${join(root, "b.umask")}`,
          "--port",
          "0",
          "--max-body-bytes",
          "2000000",
          "--workers",
          "1",
          ...(classList ? ["--classes", classList] : []),
        ]
      : [
          fileURLToPath(import.meta.url),
          "--in-process-server",
          model,
          join(root, "a.umask"),
          join(root, "b.umask"),
          ...(classList ? [classList] : []),
        ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  const killer = setTimeout(() => child.kill("SIGKILL"), (seconds + 60) * 1000);
  killer.unref();
  let stderr = "";
  const port = await new Promise((resolve, reject) => {
    child.stderr.on("data", (d) => {
      stderr += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
    child.on("exit", (c) => reject(new Error(`serve exited ${c}: ${stderr}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  const photos = ["n01440764_tench.JPEG", "n02123045_tabby.JPEG", "n04285008_sports_car.JPEG"].map((f) =>
    readFileSync(fixturePath(`text-image/${f}`)),
  );
  const corrupt = Buffer.concat([photos[0].subarray(0, 200), Buffer.alloc(500, 7)]);
  const oversized = Buffer.alloc(3_000_000, 1);
  const kinds = [
    {
      kind: "valid",
      weight: 6,
      expect: 200,
      send: (i) =>
        fetch(`${base}/v1/classify?mask=${i % 2 ? "a" : "b"}&top=3`, {
          method: "POST",
          body: photos[i % 3],
          headers: { "content-type": "image/jpeg" },
        }),
    },
    {
      kind: "corrupt",
      weight: 1,
      expect: 400,
      send: () =>
        fetch(`${base}/v1/classify?mask=a`, {
          method: "POST",
          body: corrupt,
          headers: { "content-type": "image/jpeg" },
        }),
    },
    {
      kind: "oversized",
      weight: 1,
      expect: 413,
      send: () =>
        fetch(`${base}/v1/classify?mask=a`, {
          method: "POST",
          body: oversized,
          headers: { "content-type": "image/jpeg" },
        }),
    },
    {
      kind: "unknown-mask",
      weight: 1,
      expect: 404,
      send: () =>
        fetch(`${base}/v1/classify?mask=nope`, {
          method: "POST",
          body: photos[0],
          headers: { "content-type": "image/jpeg" },
        }),
    },
  ];
  const schedule = kinds.flatMap((k) => Array(k.weight).fill(k));
  const stats = new Map(kinds.map((k) => [k.kind, { latencies: [], statuses: {}, wrong: 0 }]));
  let fiveXX = 0;
  let failures = 0;
  const end = Date.now() + seconds * 1000;
  const healthLatencies = [];
  const healthStatuses = {};
  const probe = (async () => {
    while (Date.now() < end) {
      const t = performance.now();
      try {
        const res = await fetch(`${base}/healthz`);
        await res.arrayBuffer();
        healthLatencies.push(performance.now() - t);
        healthStatuses[res.status] = (healthStatuses[res.status] ?? 0) + 1;
      } catch {
        failures++;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = c; Date.now() < end; i += clients) {
        const k = schedule[i % schedule.length];
        const s = stats.get(k.kind);
        const t = performance.now();
        try {
          const res = await k.send(i);
          await res.arrayBuffer();
          s.latencies.push(performance.now() - t);
          s.statuses[res.status] = (s.statuses[res.status] ?? 0) + 1;
          if (res.status >= 500) fiveXX++;
          if (res.status !== k.expect && res.status !== 429) s.wrong++;
        } catch {
          failures++; // connection reset (e.g. the server closing an oversized upload early)
        }
      }
    }),
  );
  await probe;
  const pct = (a, p) =>
    a.length ? a.sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor((p / 100) * a.length))] : NaN;
  console.log(`${clients} clients, ${seconds} s, loopback, ${mode}, ${modelKind} model`);
  for (const [kind, s] of stats)
    console.log(
      `  ${kind.padEnd(13)} ${String(s.latencies.length).padStart(6)} requests  statuses ${JSON.stringify(s.statuses)}  unexpected ${s.wrong}  p50 ${pct(s.latencies, 50).toFixed(1)} ms  p99 ${pct(s.latencies, 99).toFixed(1)} ms`,
    );
  const all = [...stats.values()].flatMap((s) => s.latencies);
  console.log(
    `  all: ${all.length} requests, ${(all.length / seconds).toFixed(0)} req/s, p50 ${pct(all, 50).toFixed(1)} ms, p99 ${pct(all, 99).toFixed(1)} ms, 5xx ${fiveXX}, connection failures ${failures}`,
  );
  console.log(
    `  /healthz during load: ${healthLatencies.length} probes, statuses ${JSON.stringify(healthStatuses)}, p50 ${pct(healthLatencies, 50).toFixed(1)} ms, p99 ${pct(healthLatencies, 99).toFixed(1)} ms, max ${Math.max(...healthLatencies).toFixed(1)} ms`,
  );
  const health = await fetch(`${base}/healthz`);
  console.log(`  /healthz after: ${health.status} ${await health.text()}`);
  child.kill("SIGTERM");
  const code = await new Promise((r) => child.on("exit", r));
  console.log(`  SIGTERM -> exit ${code}`);
  clearTimeout(killer);
  rmSync(root, { recursive: true, force: true });
}
