/**
 * `unmask demo` on its bundled assets, shortened (2 shots, 1 epoch) so CI stays fast: every step
 * runs, the table on stdout agrees with the files written, and --json carries the same numbers.
 * The full demo (16 shots, the recipe's 30 epochs, zero-shot 11.10% -> about 28%) is measured by hand; see
 * the README.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "@unmask/mask-format";
import { describe, expect, it } from "vitest";
import { lastJson, runCli, tempDir } from "./helpers.js";

interface DemoJson {
  out: string;
  settings: { engine: string; shots: number; epochs: number };
  data: { testImages: number; trainImages: number; classes: string[] };
  zeroShot: { accuracy: number };
  masked: {
    accuracy: number;
    maskedFraction: number;
    maskBytes: number;
    switchedOff: number;
    maskEntries: number;
  };
  mask: string;
  report: string;
  sample: { image: string; trueLabel: string; masked: { label: string; top: unknown[] } };
}

describe("unmask demo", () => {
  it("converts, evaluates, trains, evaluates again, writes the mask and prints the table", async () => {
    const out = tempDir("demo");
    const args = ["demo", "--out", out, "--device", "cpu", "--shots", "2", "--epochs", "1", "--lr", "0.01"];
    const text = await runCli(args);
    expect(text.code, text.stderr).toBe(0);
    for (const step of [
      "[1/6] convert",
      "[2/6] zero-shot",
      "[3/6] train",
      "[4/6] masked",
      "[5/6] write",
      "[6/6] classify",
    ])
      expect(text.stderr).toContain(step);

    const maskPath = join(out, "mask.umask");
    const report = JSON.parse(readFileSync(join(out, "mask.report.json"), "utf8"));
    const summary = inspect(new Uint8Array(readFileSync(maskPath)));
    // The nano-clip zero-shot accuracy on the 1,000 bundled test photos: 111 right here and with
    // the trainer's float32 engine (PyTorch: 10.18% on all 10,000); another CPU's onnxruntime
    // kernels may round a borderline photo the other way, hence the tolerance of a few photos.
    expect(report.accuracy.zeroShot).toBeCloseTo(0.111, 2);
    expect(report.accuracy.testImages).toBe(1000);
    expect(report.data.trainImages).toBe(20);
    expect(summary.metrics).toMatchObject({
      zeroShotAccuracy: report.accuracy.zeroShot,
      accuracy: report.accuracy.masked,
      testImages: 1000,
    });
    expect(summary.total.zeros).toBe(report.switchedOff);
    expect(summary.head?.classNames).toContain("ankle boot");

    const row = (name: string) => text.stdout.split("\n").find((l) => l.startsWith(name)) ?? "";
    expect(row("accuracy")).toContain(`${(100 * report.accuracy.zeroShot).toFixed(2)}%`);
    expect(row("accuracy")).toContain(`${(100 * report.accuracy.masked).toFixed(2)}%`);
    expect(row("masked fraction")).toContain(`${(100 * report.maskedFraction).toFixed(2)}%`);
    expect(row("mask file size")).toMatch(/KB/);
    expect(row("time")).toMatch(/train [\d.]+ s \(cpu\)/);
    expect(text.stdout).toContain("trouser/00002.png (a trouser)");
    expect(text.stdout).toContain(`unmask inspect ${maskPath}`);

    // --json: the same run described as one object (a second, identical run over the same folder).
    const json = await runCli([...args, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stderr).toBe("");
    const result = lastJson<DemoJson>(json.stdout);
    expect(result.settings).toMatchObject({ engine: "cpu", shots: 2, epochs: 1 });
    expect(result.data).toMatchObject({ testImages: 1000, trainImages: 20 });
    expect(result.data.classes).toHaveLength(10);
    expect(result.zeroShot.accuracy).toBe(report.accuracy.zeroShot);
    // Same seed, same data, same engine: the same mask, bit for bit.
    expect(result.masked).toMatchObject({
      accuracy: report.accuracy.masked,
      switchedOff: report.switchedOff,
      maskEntries: 268_288,
      maskBytes: statSync(maskPath).size,
    });
    expect(result.sample.trueLabel).toBe("trouser");
    expect(result.sample.masked.top).toHaveLength(3);
  });
});
