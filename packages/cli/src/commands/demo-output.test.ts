import { describe, expect, it } from "vitest";
import { type DemoResult, formatDemo } from "./demo-output.js";

const top = (label: string, score: number, others: [string, number][]) => ({
  label,
  index: 0,
  score,
  top: [{ label, index: 0, score }, ...others.map(([l, s], i) => ({ label: l, index: i + 1, score: s }))],
});

// The figures of a real run (seed 1, cpu engine), so the table is checked on realistic numbers.
const result: DemoResult = {
  out: "/tmp/demo",
  model: {
    dir: "/tmp/demo/nano-clip",
    source: "nano-clip.jit.pt",
    convertSeconds: 0.1,
    files: ["config.json", "model.safetensors", "text.onnx", "vision.onnx"],
    weightsBytes: 8_338_934,
  },
  data: {
    train: "fewshot-16-seed1.json",
    test: "test",
    classes: Array(10).fill("c"),
    trainImages: 160,
    testImages: 1000,
  },
  settings: { device: "auto", engine: "cpu", shots: 16, seed: 1, epochs: 12, lr: 3e-4 },
  zeroShot: { accuracy: 0.111, seconds: 1.1, maskedFraction: 0 },
  masked: {
    accuracy: 0.305,
    seconds: 1.3,
    trainSeconds: 17.2,
    maskedFraction: 65_923 / 268_288,
    maskEntries: 268_288,
    switchedOff: 65_923,
    maskBytes: 32_871,
    bitmapBytes: 33_536,
  },
  mask: "/tmp/demo/mask.umask",
  report: "/tmp/demo/mask.report.json",
  sample: {
    image: "test/trouser/00002.png",
    trueLabel: "trouser",
    zeroShot: top("sneaker", 0.655, [
      ["pullover", 0.126],
      ["dress", 0.118],
    ]),
    masked: top("trouser", 0.526, [
      ["sneaker", 0.155],
      ["dress", 0.114],
    ]),
  },
  totalSeconds: 19.8,
};

describe("formatDemo", () => {
  it("prints the before/after table with aligned columns, the sample and what to run next", () => {
    const lines = formatDemo(result);
    expect(lines[1]).toBe(
      "nano-clip (pretrained on CIFAR-10) on Fashion-MNIST: 16 shots per class, 12 epochs, cpu engine",
    );
    expect(lines.slice(3, 8)).toEqual([
      "                  zero-shot   R-AMT mask",
      "accuracy             11.10%       30.50%   1,000 test images, 10 classes",
      "masked fraction       0.00%       24.57%   65,923 of 268,288 weights off",
      "mask file size            -      32.9 KB   a plain bitmap: 33.5 KB; the model's weights: 8.3 MB",
      "time                  1.1 s       18.5 s   eval 1.1 s | train 17.2 s (cpu) + eval 1.3 s",
    ]);
    expect(lines).toContain("sample test/trouser/00002.png (a trouser)");
    expect(lines).toContain("  zero-shot    sneaker 65.5%, pullover 12.6%, dress 11.8%");
    expect(lines).toContain("  R-AMT mask   trouser 52.6%, sneaker 15.5%, dress 11.4%");
    expect(lines).toContain("  unmask inspect /tmp/demo/mask.umask");
  });
});
