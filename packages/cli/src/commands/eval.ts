/**
 * `unmask eval --model DIR [--mask FILE] --data PATH [--json]`
 * Accuracy, per-class accuracy and the most confused pairs on a labelled image folder (or the
 * test/ split of a train/val/test layout), through @unmask/infer, so the numbers can be compared
 * with the trainer's evaluation. With --json the last line of stdout is
 * { accuracy, images, correct, perClass, topConfusions, ... }.
 */
import { createClassifier, evaluateImageFolder, findClass, listImageFolder } from "@unmask/infer";
import { decodeMask } from "@unmask/mask-format";
import { readBytes } from "@unmask/mask-format/node";
import type { Command } from "commander";
import { note, printJson, printLine, progressBar } from "../ui.js";
import { positiveInt, readClassList } from "./predict.js";

export function register(program: Command): void {
  program
    .command("eval")
    .description("Evaluate a model (and mask) on a labelled image folder: accuracy, per-class, confusions")
    .requiredOption("--model <dir>", "model directory written by `unmask convert`")
    .option("--mask <file>", ".umask file")
    .requiredOption("--data <path>", "a folder of class subfolders, or one with train/ and test/")
    .option("--template <text>", "prompt template with {} (when the mask has no head)")
    .option("--classes-file <file>", "class names, one per line (default: the folder names)")
    .option("--limit <n>", "evaluate only the first n images", positiveInt("--limit"))
    .option("--batch-size <n>", "images per onnxruntime run", positiveInt("--batch-size"), 32)
    .option("--device <ep>", "execution provider: cpu or cuda", "cpu")
    .option("--json", "print the result as JSON (last line of stdout)")
    .action(async (options) => {
      const data = await listImageFolder(options.data);
      const mask = options.mask
        ? decodeMask(await readBytes(options.mask), { source: options.mask })
        : undefined;
      // A head over the same classes (any order) is used as is; otherwise the folder names.
      const headClasses = mask?.head?.classNames;
      const sameSet =
        headClasses !== undefined &&
        headClasses.length === data.classNames.length &&
        data.classNames.every((c) => findClass(headClasses, c) !== undefined);
      const classes =
        (await readClassList({ classesFile: options.classesFile })) ??
        (sameSet ? undefined : data.classNames);
      const classifier = await createClassifier({
        model: options.model,
        mask,
        maskName: options.mask,
        classes,
        template: options.template,
        batchSize: options.batchSize,
        executionProvider: options.device,
      });
      try {
        const total = Math.min(options.limit ?? data.items.length, data.items.length);
        const bar = progressBar("eval", total, { quiet: options.json });
        const result = await evaluateImageFolder({
          classifier,
          data,
          limit: options.limit,
          chunkSize: options.batchSize * 2,
          onProgress: (e) => bar.update(e.done),
        });
        bar.stop();
        if (options.json) {
          printJson({
            accuracy: result.accuracy,
            images: result.images,
            correct: result.correct,
            perClass: result.perClass,
            topConfusions: result.topConfusions,
            head: classifier.headSource,
            mask: options.mask ?? null,
            seconds: result.seconds,
          });
          return;
        }
        printLine(`accuracy ${(100 * result.accuracy).toFixed(2)}% (${result.correct}/${result.images})`);
        for (const c of result.perClass)
          printLine(`  ${c.className}\t${(100 * c.accuracy).toFixed(1)}%\t(${c.correct}/${c.images})`);
        if (result.topConfusions.length > 0) {
          printLine("most confused (actual -> predicted):");
          for (const p of result.topConfusions.slice(0, 5))
            printLine(`  ${p.actual} -> ${p.predicted}\t${p.count}`);
        }
        note(`${result.images} images in ${result.seconds.toFixed(1)} s (head: ${classifier.headSource})`);
      } finally {
        await classifier.dispose();
      }
    });
}
