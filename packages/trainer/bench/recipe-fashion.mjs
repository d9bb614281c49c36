// The published R-AMT recipe on real photos, against the PyTorch reference
// (/work/shared/models/README.md): nano-clip converted, trained with the cpu engine on
// Fashion-MNIST with each of the reference's three 16-shot lists (--train-list), evaluated on the
// full test folder (10,000 images). Reference: 31.41% mean masked accuracy from 10.18% zero-shot.
//
// Run after `pnpm --filter @unmask/trainer... build` and `pnpm --filter @unmask/convert build`:
//   nice node packages/trainer/bench/recipe-fashion.mjs [--seeds 1,2,3] [--epochs 30] [--eval-limit N]
//     [--data DIR] [--model FILE] [--out DIR]
// Long (minutes per seed on the cpu engine); run it alone. Prints one JSON line per seed and a
// summary line.
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
// Sibling package through its built output: the trainer does not depend on the converter.
import { convert } from "../../convert/dist/index.js";
import { train } from "../dist/index.js";

const REFERENCE = { zeroShot: 0.1018, masked: { 1: 0.3273, 2: 0.3342, 3: 0.2808 }, mean: 0.3141 };

const { values } = parseArgs({
  options: {
    seeds: { type: "string", default: "1,2,3" },
    epochs: { type: "string", default: "30" },
    "eval-limit": { type: "string" },
    data: { type: "string", default: "/work/shared/data/fashion-mnist" },
    model: { type: "string", default: "/work/shared/models/nano-clip.jit.pt" },
    out: { type: "string", default: join(tmpdir(), "unmask-recipe-fashion") },
  },
});

const seeds = values.seeds.split(",").map(Number);
mkdirSync(values.out, { recursive: true });
const modelDir = join(values.out, "nano-clip");
await convert(values.model, modelDir, { overwrite: true, onnx: false });

const runs = [];
let zeroShot = null;
for (const seed of seeds) {
  let lastEpochLine = 0;
  const result = await train({
    model: modelDir,
    data: values.data,
    trainList: join(values.data, `fewshot-16-seed${seed}.json`),
    seed,
    engine: "cpu",
    preset: "recipe",
    epochs: Number(values.epochs),
    evalLimit: values["eval-limit"] ? Number(values["eval-limit"]) : undefined,
    // zero-shot accuracy depends on neither the seed nor the list: measure it once
    evaluateZeroShot: zeroShot === null,
    out: join(values.out, `seed${seed}.umask`),
    onProgress: (e) => {
      if (e.status === "epoch-end" && Date.now() - lastEpochLine > 20_000) {
        lastEpochLine = Date.now();
        process.stderr.write(`seed ${seed} epoch ${e.epoch + 1}/${e.epochs} loss ${e.loss.toFixed(4)}\n`);
      }
    },
  });
  const r = result.report;
  zeroShot ??= r.accuracy.zeroShot;
  const run = {
    seed,
    zeroShot,
    masked: r.accuracy.masked,
    reference: REFERENCE.masked[seed] ?? null,
    maskedFraction: r.maskedFraction,
    testImages: r.accuracy.testImages,
    trainSeconds: Number(r.time.trainSeconds.toFixed(1)),
    evaluateSeconds: Number(r.time.evaluateSeconds.toFixed(1)),
    totalSeconds: Number(r.time.totalSeconds.toFixed(1)),
    trainImagesPerSecond: Number(r.imagesPerSecond.toFixed(1)),
    finalTrainLoss: r.history.at(-1)?.loss ?? null,
  };
  runs.push(run);
  console.log(JSON.stringify(run));
}

const mean = runs.reduce((a, r) => a + r.masked, 0) / runs.length;
const summary = {
  meanMasked: mean,
  referenceMean: REFERENCE.mean,
  differencePoints: Number((100 * (mean - REFERENCE.mean)).toFixed(2)),
  withinThreePoints: Math.abs(mean - REFERENCE.mean) <= 0.03,
  zeroShot: runs[0]?.zeroShot,
  referenceZeroShot: REFERENCE.zeroShot,
  maskedFraction: runs.map((r) => Number((100 * r.maskedFraction).toFixed(2))),
};
console.log(JSON.stringify(summary));
