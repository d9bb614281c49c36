/**
 * What `unmask demo` shows: the result object (also its --json output), the before/after table,
 * and the stderr narration (numbered steps, a training bar on a terminal, epoch lines elsewhere).
 */
import type { Classification } from "@unmask/infer";
import type { TrainProgress } from "@unmask/trainer";
import { type Bar, formatBytes, note, progressBar } from "../ui.js";

export interface DemoResult {
  out: string;
  model: { dir: string; source: string; convertSeconds: number; files: string[]; weightsBytes: number };
  data: { train: string; test: string; classes: string[]; trainImages: number; testImages: number };
  settings: { device: string; engine: string; shots: number; seed: number; epochs: number; lr: number };
  zeroShot: { accuracy: number; seconds: number; maskedFraction: 0 };
  masked: {
    accuracy: number;
    seconds: number;
    trainSeconds: number;
    maskedFraction: number;
    maskEntries: number;
    switchedOff: number;
    maskBytes: number;
    bitmapBytes: number;
  };
  mask: string;
  report: string;
  sample: { image: string; trueLabel: string | null; zeroShot: Classification; masked: Classification };
  totalSeconds: number;
}

/** Stderr narration: numbered steps, a training bar on a terminal, epoch lines elsewhere. */
export class Narrator {
  private bar: Bar | null = null;
  private readonly lines = !process.stderr.isTTY;
  constructor(private readonly quiet: boolean) {}

  step(n: number, text: string): void {
    if (!this.quiet) note(`[${n}/6] ${text}`);
  }

  info(text: string): void {
    if (!this.quiet) note(`      ${text}`);
  }

  /** A bar over `total` units, or nothing when quiet / not a terminal. */
  startBar(label: string, total: number, format?: string): Bar {
    this.stopBar();
    this.bar = progressBar(label, total, { quiet: this.quiet, ...(format ? { format } : {}) });
    return this.bar;
  }

  stopBar(): void {
    this.bar?.stop();
    this.bar = null;
  }

  onTrain = (e: TrainProgress): void => {
    if (this.quiet) return;
    switch (e.status) {
      case "step":
        if (!this.bar)
          this.startBar(
            "train",
            e.totalSteps,
            "      train [{bar}] epoch {epoch} | step {value}/{total} | loss {loss} | {ips} img/s | ETA {etaText}",
          );
        this.bar?.update(e.globalStep, {
          epoch: `${e.epoch + 1}/${e.epochs}`,
          loss: e.loss.toFixed(3),
          ips: e.imagesPerSecond.toFixed(1),
          etaText: `${Math.round(e.etaSeconds)}s`,
        });
        break;
      case "epoch-end":
        if (this.lines)
          this.info(
            `epoch ${e.epoch + 1}/${e.epochs}: loss ${e.loss.toFixed(3)}, train accuracy ${(100 * e.accuracy).toFixed(1)}%, ${e.seconds.toFixed(1)} s`,
          );
        break;
      case "done":
        this.stopBar();
        break;
    }
  };
}

const percent = (x: number) => `${(100 * x).toFixed(2)}%`;

/** The before/after table and what to do next, one string per line. */
export function formatDemo(r: DemoResult): string[] {
  const count = (n: number) => n.toLocaleString("en-US");
  const topText = (c: Classification) =>
    c.top.map((x) => `${x.label} ${(100 * x.score).toFixed(1)}%`).join(", ");
  const rows: [string, string, string, string][] = [
    ["", "zero-shot", "R-AMT mask", ""],
    [
      "accuracy",
      percent(r.zeroShot.accuracy),
      percent(r.masked.accuracy),
      `${count(r.data.testImages)} test images, ${r.data.classes.length} classes`,
    ],
    [
      "masked fraction",
      percent(0),
      percent(r.masked.maskedFraction),
      `${count(r.masked.switchedOff)} of ${count(r.masked.maskEntries)} weights off`,
    ],
    [
      "mask file size",
      "-",
      formatBytes(r.masked.maskBytes),
      `a plain bitmap: ${formatBytes(r.masked.bitmapBytes)}; the model's weights: ${formatBytes(r.model.weightsBytes)}`,
    ],
    [
      "time",
      `${r.zeroShot.seconds.toFixed(1)} s`,
      `${(r.masked.trainSeconds + r.masked.seconds).toFixed(1)} s`,
      `eval ${r.zeroShot.seconds.toFixed(1)} s | train ${r.masked.trainSeconds.toFixed(1)} s (${r.settings.engine}) + eval ${r.masked.seconds.toFixed(1)} s`,
    ],
  ];
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((row) => row[c].length)));
  const lines = [
    "",
    `nano-clip (pretrained on CIFAR-10) on Fashion-MNIST: ${r.settings.shots} shots per class, ${r.settings.epochs} epochs, ${r.settings.engine} engine`,
    "",
    ...rows.map((row) =>
      [row[0].padEnd(widths[0]), row[1].padStart(widths[1]), row[2].padStart(widths[2]), row[3]]
        .join("   ")
        .trimEnd(),
    ),
    "",
    `sample ${r.sample.image}${r.sample.trueLabel ? ` (a ${r.sample.trueLabel})` : ""}`,
    `  zero-shot    ${topText(r.sample.zeroShot)}`,
    `  R-AMT mask   ${topText(r.sample.masked)}`,
    "",
    `wrote ${r.out}: nano-clip/ (model), mask.umask, mask.report.json (total ${r.totalSeconds.toFixed(1)} s)`,
    "next:",
    `  unmask inspect ${r.mask}`,
    `  unmask predict IMAGE --model ${r.model.dir} --mask ${r.mask}`,
  ];
  return lines;
}
