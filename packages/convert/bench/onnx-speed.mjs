// Speed of vision.onnx on onnxruntime's CPU provider against the achievable peak, both measured
// in the same run: a ViT-B/16-shaped model with random weights (stored fp16 as OpenAI's release,
// computed in fp32), batch 8, 2 intra-op threads; the peak is onnxruntime's own throughput on one
// fp32 MatMul [1576, 768] x [768, 3072] (the ViT-B/16 MLP shape at batch 8).
//
// Usage (after `pnpm --filter @unmask/convert... build`):
//   node bench/onnx-speed.mjs [--dtype F16|F32] [--batch 8] [--iterations 5] [--threads 2]
//                             [--attention matmul|mha]
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeRandomVitB16ModelDir } from "@unmask/convert/testing";
import * as ort from "onnxruntime-node";
import { encodeModel, GraphBuilder, OnnxDataType } from "../dist/onnx/index.js";

const { values: args } = parseArgs({
  options: {
    dtype: { type: "string", default: "F16" },
    batch: { type: "string", default: "8" },
    iterations: { type: "string", default: "5" },
    threads: { type: "string", default: "2" },
    attention: { type: "string", default: "matmul" },
  },
});
const batch = Number(args.batch);
const iterations = Number(args.iterations);
const threads = Number(args.threads);

/** Forward FLOPs of one image (multiply-add = 2): patch conv, 12 blocks, projection. */
function visionFlopsPerImage(c) {
  const W = c.visionWidth;
  const g = c.imageResolution / c.visionPatchSize;
  const T = g * g + 1;
  const conv = 2 * g * g * W * 3 * c.visionPatchSize ** 2;
  const block = 2 * T * W * W * (3 + 1 + 4 + 4) + 2 * 2 * T * T * W;
  return conv + c.visionLayers * block + 2 * W * c.embedDim;
}

const sessionOptions = {
  executionProviders: ["cpu"],
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
};

function randomFloats(n, seed) {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

/** A session of one fp32 MatMul [M, K] x [K, N] with B a constant initializer, as the graph's Gemms. */
async function matmulSession(M, K, N) {
  const g = new GraphBuilder("peak_matmul");
  const a = g.input("a", OnnxDataType.FLOAT, [M, K]);
  const b = g.constant("b", OnnxDataType.FLOAT, [K, N], new Uint8Array(randomFloats(K * N, 7).buffer));
  g.output(g.node("MatMul", [a, b]), "c", OnnxDataType.FLOAT, [M, N]);
  const bytes = encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    producerName: "unmask-bench",
    producerVersion: "0",
    graph: g.build(),
  });
  const session = await ort.InferenceSession.create(bytes, sessionOptions);
  const feeds = { a: new ort.Tensor("float32", randomFloats(M * K, 3), [M, K]) };
  return { label: `[${M}, ${K}] x [${K}, ${N}]`, flops: 2 * M * K * N, session, feeds, times: [] };
}

async function timed(session, feeds) {
  const t0 = process.hrtime.bigint();
  await session.run(feeds);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const best = (times) => Math.min(...times);
const median = (times) => [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];

const dir = mkdtempSync(join(tmpdir(), "unmask-onnx-speed-"));
try {
  const t0 = Date.now();
  const { config, onnxPaths: paths } = await writeRandomVitB16ModelDir({
    modelDir: dir,
    dtype: args.dtype,
    attention: args.attention,
  });
  const setupSeconds = (Date.now() - t0) / 1000;

  const session = await ort.InferenceSession.create(paths.vision, sessionOptions);
  const R = config.imageResolution;
  const feeds = {
    pixel_values: new ort.Tensor("float32", randomFloats(batch * 3 * R * R, 11), [batch, 3, R, R]),
  };
  // The peak: onnxruntime's MatMul on the four Linear shapes of the tower at this batch; the
  // fastest of them is the achievable peak (the first is the MLP's c_fc, [1576,768]x[768,3072]).
  const W = config.visionWidth;
  const M = batch * ((R / config.visionPatchSize) ** 2 + 1);
  const peaks = [
    await matmulSession(M, W, 4 * W),
    await matmulSession(M, W, 3 * W),
    await matmulSession(M, W, W),
    await matmulSession(M, 4 * W, W),
  ];

  // Interleaved rounds: the machine is shared, so the model and the peak are timed side by side
  // and each keeps its best time (what the machine achieves when it is not stolen from).
  await session.run(feeds); // warm-up: the first run allocates
  for (const p of peaks) await p.session.run(p.feeds);
  const visionTimes = [];
  for (let round = 0; round < iterations; round++) {
    visionTimes.push(await timed(session, feeds));
    for (const p of peaks) for (let k = 0; k < 3; k++) p.times.push(await timed(p.session, p.feeds));
  }
  await session.release();
  for (const p of peaks) await p.session.release();

  const flops = visionFlopsPerImage(config);
  const gflopsOf = (seconds) => (batch * flops) / seconds / 1e9;
  const peakGflops = Math.max(...peaks.map((p) => p.flops / best(p.times) / 1e9));
  const result = {
    model: "ViT-B/16 vision tower, random weights",
    weights: `${args.dtype} in model.safetensors (external data), fp32 compute`,
    attention: args.attention,
    batch,
    threads,
    rounds: iterations,
    visionOnnxBytes: statSync(paths.vision).size,
    setupSeconds,
    gflopPerImage: Number((flops / 1e9).toFixed(2)),
    imagesPerSecond: Number((batch / best(visionTimes)).toFixed(2)),
    imagesPerSecondMedian: Number((batch / median(visionTimes)).toFixed(2)),
    visionGflops: Number(gflopsOf(best(visionTimes)).toFixed(1)),
    peakMatmulGflops: Object.fromEntries(
      peaks.map((p) => [`fp32 ${p.label}`, Number((p.flops / best(p.times) / 1e9).toFixed(1))]),
    ),
    fractionOfPeak: Number((gflopsOf(best(visionTimes)) / peakGflops).toFixed(3)),
    fractionOfPeakMedians: Number(
      (
        gflopsOf(median(visionTimes)) / Math.max(...peaks.map((p) => p.flops / median(p.times) / 1e9))
      ).toFixed(3),
    ),
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
