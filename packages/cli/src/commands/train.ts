/**
 * `unmask train`: R-AMT on a few-shot dataset, writing a .umask and a JSON report beside it.
 * Progress goes to stderr (a bar on a terminal, one line per epoch otherwise), the summary to
 * stdout; `--json` prints the report as the last stdout line. Ctrl-C finishes the current step,
 * saves the checkpoint and exits (code 130); `--resume` continues to the identical result.
 */
import { isUnmaskError, type UnmaskError } from "@unmask/clip";
import {
  PRECISIONS,
  type Precision,
  type PresetName,
  type TrainProgress,
  type TrainReport,
  train,
} from "@unmask/trainer";
import { type Command, InvalidArgumentError, Option } from "commander";
import { type Bar, formatBytes, note, printJson, printLine, progressBar } from "../ui.js";

interface TrainFlags {
  model: string;
  data: string;
  out: string;
  shots: number;
  seed: number;
  device: "cpu" | "cuda";
  precision?: Precision;
  gpus?: number;
  preset: PresetName;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  lambda?: number;
  trainList?: string;
  testData?: string;
  template?: string[];
  maskMlp?: boolean;
  maskBlocks?: number[];
  cacheSize?: number;
  evalLimit?: number;
  evalBatchSize?: number;
  resume?: boolean;
  json?: boolean;
}

function integer(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
    return n;
  };
}

function number(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
    return n;
  };
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function blockList(value: string): number[] {
  return value.split(",").map((b) => integer("--mask-blocks")(b.trim()));
}

export function register(program: Command): void {
  program
    .command("train")
    .description("learn an R-AMT mask on a few-shot dataset (writes a .umask and a JSON report beside it)")
    .requiredOption("--model <dir>", "converted model directory (unmask convert)")
    .requiredOption(
      "--data <path>",
      "image folder (class per subfolder), folder with train/ and test/, or a CoOp split_zhou_*.json",
    )
    .requiredOption("--out <file>", "the .umask to write (report: <name>.report.json beside it)")
    .option("--shots <k>", "images per class", integer("--shots"), 16)
    .option("--seed <n>", "seed of sampling, augmentation and gradient dropout", integer("--seed"), 1)
    .addOption(new Option("--device <device>", "engine").choices(["cpu", "cuda"]).default("cpu"))
    .addOption(
      new Option(
        "--precision <type>",
        "16-bit type of the cuda engine's activations and GEMMs (default fp16; bf16 for a model whose activations outgrow fp16)",
      ).choices([...PRECISIONS]),
    )
    .option(
      "--gpus <n>",
      "GPUs of this host to train on, one worker each (needs --device cuda)",
      integer("--gpus"),
    )
    .addOption(
      new Option("--preset <name>", "recipe preset (lr, epochs, lambda)")
        .choices(["recipe", "rmt-16shot", "imagenet"])
        .default("recipe"),
    )
    .option("--epochs <n>", "epochs (preset: 30, imagenet 10)", integer("--epochs"))
    .option("--batch-size <n>", "training batch (32)", integer("--batch-size"))
    .option("--lr <lr>", "Adam learning rate (8e-5, imagenet 3e-5)", number("--lr"))
    .option("--lambda <l>", "gradient-dropout lambda (recipe 1, rmt-16shot 0.3)", number("--lambda"))
    .option(
      "--train-list <file>",
      'JSON {"train": [paths relative to --data]}: train on exactly these images',
    )
    .option("--test-data <path>", "evaluate on this folder or split file instead of --data's test split")
    .option("--template <t>", 'prompt template with {} (repeatable; default "a photo of a {}.")', collect)
    .option("--mask-mlp", "also mask each block's MLP weights")
    .option("--mask-blocks <list>", "mask only these vision blocks (comma-separated indices)", blockList)
    .option(
      "--cache-size <px>",
      "side of the uint8 training image cache (model resolution)",
      integer("--cache-size"),
    )
    .option("--eval-limit <n>", "evaluate on the first N test images only", integer("--eval-limit"))
    .option("--eval-batch-size <n>", "test batch (100)", integer("--eval-batch-size"))
    .option("--resume", "continue from <out>.ckpt (written every epoch and on Ctrl-C)")
    .option("--json", "print the report as JSON on the last stdout line")
    .action(async (flags: TrainFlags) => {
      await runTrain(flags);
    });
}

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const percent = (x: number | null) => (x === null ? "n/a" : `${(100 * x).toFixed(2)}%`);

/** Turns progress events into a bar on a terminal and a line per epoch elsewhere. */
function progressRenderer(quiet: boolean): { onProgress: (e: TrainProgress) => void; stop: () => void } {
  let bar: Bar | null = null;
  let evalBar: Bar | null = null;
  const lines = !quiet && !process.stderr.isTTY;
  let last: Extract<TrainProgress, { status: "step" }> | null = null;
  const stop = () => {
    bar?.stop();
    evalBar?.stop();
    bar = evalBar = null;
  };
  const onProgress = (e: TrainProgress) => {
    if (quiet) return;
    switch (e.status) {
      case "prepare":
        if (e.stage !== "cache" || e.done === e.total)
          note(`${e.message}${e.total > 1 ? ` (${e.done}/${e.total})` : ""}`);
        break;
      case "resume":
        note(`resuming from ${e.checkpoint} at step ${e.globalStep}`);
        break;
      case "step":
        last = e;
        bar ??= progressBar("train", e.totalSteps, {
          format:
            "train [{bar}] epoch {epoch} step {value}/{total} | loss {loss} | acc {acc} | {ips} img/s | ETA {etaText}",
          payload: { epoch: `1/${e.epochs}`, loss: "-", acc: "-", ips: "-", etaText: "-" },
        });
        bar.update(e.globalStep, {
          epoch: `${e.epoch + 1}/${e.epochs}`,
          loss: e.loss.toFixed(4),
          acc: `${(100 * e.accuracy).toFixed(1)}%`,
          ips: e.imagesPerSecond.toFixed(1),
          etaText: formatSeconds(e.etaSeconds),
        });
        break;
      case "epoch-end":
        if (lines)
          note(
            `epoch ${e.epoch + 1}/${e.epochs}: loss ${e.loss.toFixed(4)}, train acc ${(100 * e.accuracy).toFixed(1)}%, ` +
              `${last ? last.imagesPerSecond.toFixed(1) : "?"} img/s, ${e.seconds.toFixed(1)} s, ETA ${formatSeconds(last?.etaSeconds ?? 0)}`,
          );
        break;
      case "evaluate":
        if (!evalBar) {
          bar?.stop();
          bar = null;
          if (lines) note(`evaluating on ${e.total} test images`);
          evalBar = progressBar("evaluate", e.total);
        }
        evalBar.update(e.done);
        break;
      case "done":
        stop();
        break;
    }
  };
  return { onProgress, stop };
}

function printSummary(report: TrainReport, maskBytes: number): void {
  printLine(`zero-shot accuracy   ${percent(report.accuracy.zeroShot)}`);
  printLine(
    `masked accuracy      ${percent(report.accuracy.masked)}  (${report.accuracy.testImages} test images)`,
  );
  printLine(
    `switched off         ${percent(report.maskedFraction)} of ${report.maskEntries.toLocaleString("en-US")} mask entries`,
  );
  printLine(
    `time                 prepare ${report.time.prepareSeconds.toFixed(1)} s, train ${report.time.trainSeconds.toFixed(1)} s ` +
      `(${report.imagesPerSecond.toFixed(1)} img/s), evaluate ${report.time.evaluateSeconds.toFixed(1)} s`,
  );
  printLine(`wrote                ${report.mask} (${formatBytes(maskBytes)}) and its report`);
}

async function runTrain(flags: TrainFlags): Promise<void> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      note("\ninterrupted: finishing the current step and saving a checkpoint (Ctrl-C again to quit now)");
      controller.abort();
    } else process.exit(130);
  };
  process.on("SIGINT", onSigint);
  const renderer = progressRenderer(Boolean(flags.json));
  try {
    const maskedTensors =
      flags.maskMlp || flags.maskBlocks
        ? {
            ...(flags.maskMlp ? { mlp: true } : {}),
            ...(flags.maskBlocks ? { blocks: flags.maskBlocks } : {}),
          }
        : undefined;
    const result = await train({
      model: flags.model,
      data: flags.data,
      ...(flags.testData ? { testData: flags.testData } : {}),
      shots: flags.shots,
      seed: flags.seed,
      ...(flags.trainList ? { trainList: flags.trainList } : {}),
      engine: flags.device,
      ...(flags.precision ? { precision: flags.precision } : {}),
      ...(flags.gpus !== undefined ? { gpus: flags.gpus } : {}),
      preset: flags.preset,
      epochs: flags.epochs,
      batchSize: flags.batchSize,
      lr: flags.lr,
      lambda: flags.lambda,
      maskedTensors,
      template: flags.template,
      out: flags.out,
      resume: Boolean(flags.resume),
      cacheSize: flags.cacheSize,
      evalLimit: flags.evalLimit,
      evalBatchSize: flags.evalBatchSize,
      signal: controller.signal,
      onProgress: renderer.onProgress,
    });
    if (flags.json) printJson(result.report);
    else printSummary(result.report, result.maskBytes.byteLength);
  } catch (error) {
    renderer.stop();
    if (isUnmaskError(error, "INTERRUPTED")) {
      note((error as UnmaskError).message);
      process.exitCode = 130;
      return;
    }
    throw error;
  } finally {
    process.off("SIGINT", onSigint);
  }
}
