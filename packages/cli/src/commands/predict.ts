/**
 * `unmask predict IMAGE... --model DIR [--mask FILE] [--classes a,b,c | --classes-file F] [--top 5] [--json]`
 * Classifies images with @unmask/infer: zero-shot with class names, or with a mask (its head
 * supplies the classes when none are given).
 */
import { readFile } from "node:fs/promises";
import { createClassifier } from "@unmask/infer";
import { UnmaskError } from "@unmask/mask-format";
import type { Command } from "commander";
import { printJson, printLine } from "../ui.js";

export async function readClassList(options: {
  classes?: string;
  classesFile?: string;
}): Promise<string[] | undefined> {
  if (options.classes !== undefined && options.classesFile !== undefined)
    throw new UnmaskError("BAD_OPTION", "give --classes or --classes-file, not both", {
      subject: "--classes",
    });
  let list: string[] | undefined;
  if (options.classes !== undefined) list = options.classes.split(",");
  else if (options.classesFile !== undefined) {
    const text = await readFile(options.classesFile, "utf8").catch((cause: Error) => {
      throw new UnmaskError("FILE_NOT_FOUND", `${options.classesFile}: cannot read (${cause.message})`, {
        subject: options.classesFile,
      });
    });
    list = text.split(/\r?\n/);
  }
  if (list === undefined) return undefined;
  list = list.map((c) => c.trim()).filter((c) => c.length > 0);
  if (list.length === 0)
    throw new UnmaskError("BAD_OPTION", "the class list is empty", { subject: "--classes" });
  return list;
}

export function positiveInt(flag: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1)
      throw new UnmaskError(
        "BAD_OPTION",
        `${flag} must be a positive integer, not ${JSON.stringify(value)}`,
        {
          subject: flag,
        },
      );
    return Number(value);
  };
}

export function register(program: Command): void {
  program
    .command("predict")
    .description("Classify images with a model directory and an optional .umask mask")
    .argument("<images...>", "image files")
    .requiredOption("--model <dir>", "model directory written by `unmask convert`")
    .option("--mask <file>", ".umask file (its classifier head is used when no classes are given)")
    .option("--classes <list>", "comma-separated class names")
    .option("--classes-file <file>", "class names, one per line")
    .option("--template <text>", 'prompt template with {} (default: the mask\'s, else "a photo of a {}.")')
    .option("--top <k>", "classes to show per image", positiveInt("--top"), 5)
    .option("--batch-size <n>", "images per onnxruntime run", positiveInt("--batch-size"), 16)
    .option("--device <ep>", "execution provider: cpu or cuda", "cpu")
    .option("--json", "one JSON object per image on stdout")
    .action(async (images: string[], options) => {
      const classes = await readClassList(options);
      const classifier = await createClassifier({
        model: options.model,
        mask: options.mask,
        classes,
        template: options.template,
        batchSize: options.batchSize,
        executionProvider: options.device,
      });
      try {
        const results = await classifier.classify(images, { topK: options.top });
        results.forEach((r, i) => {
          if (options.json)
            printJson({
              image: images[i],
              label: r.label,
              score: r.score,
              top: r.top.map(({ label, score }) => ({ label, score })),
            });
          else
            printLine(
              `${images[i]}\t${r.top.map((t) => `${t.label} ${(100 * t.score).toFixed(1)}%`).join("\t")}`,
            );
        });
      } finally {
        await classifier.dispose();
      }
    });
}
