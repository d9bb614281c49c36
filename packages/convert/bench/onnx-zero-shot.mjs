// Zero-shot CIFAR-10 through the ONNX export, against PyTorch: converts nano-clip and micro-clip
// (OpenAI-style TorchScript archives, fp16) from /work/shared/models, classifies the CIFAR-10
// test photos with "a photo of a {}." on onnxruntime CPU, and prints agreement with PyTorch's
// predictions and both accuracies (/work/shared/data/cifar10/zero-shot-reference.json).
//
// Usage (after `pnpm --filter @unmask/convert... build`):
//   node bench/onnx-zero-shot.mjs [--shared /work/shared] [--models nano-clip,micro-clip]
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { convert } from "../dist/index.js";
import { zeroShotPredictions } from "../dist/onnx/testing.js";

const { values: args } = parseArgs({
  options: {
    shared: { type: "string", default: "/work/shared" },
    models: { type: "string", default: "nano-clip,micro-clip" },
  },
});
const data = join(args.shared, "data/cifar10");
const reference = JSON.parse(readFileSync(join(data, "zero-shot-reference.json"), "utf8"));
const dir = mkdtempSync(join(tmpdir(), "unmask-zero-shot-"));
try {
  for (const name of args.models.split(",")) {
    const expected = reference.models[name];
    const modelDir = join(dir, name);
    const { config } = await convert(join(args.shared, "models", `${name}.jit.pt`), modelDir);
    const files = Object.keys(expected.predictions).sort();
    const t0 = performance.now();
    const predictions = await zeroShotPredictions({
      modelDir,
      imagePaths: files.map((f) => join(data, f)),
      classNames: reference.classes,
      template: reference.prompt,
      resolution: config.imageResolution,
    });
    const seconds = (performance.now() - t0) / 1000;
    let agree = 0;
    let correct = 0;
    files.forEach((f, i) => {
      if (predictions[i] === expected.predictions[f]) agree++;
      if (reference.classes[predictions[i]] === f.split("/")[1]) correct++;
    });
    console.log(
      JSON.stringify({
        model: name,
        images: files.length,
        prompt: reference.prompt,
        agreementWithPyTorch: agree / files.length,
        accuracyOnnx: correct / files.length,
        accuracyPyTorch: expected.accuracy,
        accuracyDifferencePoints: Number((100 * (correct / files.length - expected.accuracy)).toFixed(3)),
        secondsIncludingDecode: Number(seconds.toFixed(2)),
      }),
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
