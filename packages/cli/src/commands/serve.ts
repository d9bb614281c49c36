/**
 * `unmask serve --model DIR --mask NAME=FILE ... [--classes a,b] [--port 8080] [--host 127.0.0.1]`
 * Serves classification over HTTP (see @unmask/infer createInferenceServer). All masks share one
 * base model's weights. SIGTERM / SIGINT: stop accepting, finish in-flight requests, exit 0.
 */
import { BaseModel, type Classifier, createClassifier, createInferenceServer } from "@unmask/infer";
import { UnmaskError } from "@unmask/mask-format";
import type { Command } from "commander";
import { note } from "../ui.js";
import { positiveInt, readClassList } from "./predict.js";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function register(program: Command): void {
  program
    .command("serve")
    .description("HTTP JSON API: POST /v1/classify, GET /v1/masks, GET /healthz")
    .requiredOption("--model <dir>", "model directory written by `unmask convert`")
    .option("--mask <name=file>", "a mask to serve under NAME (repeatable)", collect, [])
    .option("--classes <list>", "comma-separated class names (for masks without a head, and zero-shot)")
    .option("--classes-file <file>", "class names, one per line")
    .option("--template <text>", "prompt template with {}")
    .option("--port <port>", "TCP port (0 picks a free one)", (v) => Number(v), 8080)
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--max-body-bytes <n>", "largest request body", positiveInt("--max-body-bytes"))
    .option("--max-image-side <px>", "largest image side", positiveInt("--max-image-side"))
    .option("--concurrency <n>", "classifications at once", positiveInt("--concurrency"))
    .option("--queue <n>", "requests waiting before 429", positiveInt("--queue"))
    .option("--timeout-ms <ms>", "per-request time budget", positiveInt("--timeout-ms"))
    .option("--device <ep>", "execution provider: cpu or cuda", "cpu")
    .action(async (options) => {
      const classes = await readClassList(options);
      const model = await BaseModel.load({ model: options.model, executionProvider: options.device });
      const classifiers = new Map<string, Classifier>();
      for (const spec of options.mask as string[]) {
        const eq = spec.indexOf("=");
        if (eq <= 0 || eq === spec.length - 1)
          throw new UnmaskError("BAD_OPTION", `--mask takes NAME=FILE, not ${JSON.stringify(spec)}`, {
            subject: "--mask",
          });
        const name = spec.slice(0, eq);
        if (classifiers.has(name))
          throw new UnmaskError("BAD_OPTION", `mask name ${name} is given twice`, { subject: "--mask" });
        classifiers.set(
          name,
          await createClassifier({
            model,
            mask: spec.slice(eq + 1),
            maskName: name,
            classes,
            template: options.template,
          }),
        );
      }
      if (classes)
        classifiers.set("zero-shot", await createClassifier({ model, classes, template: options.template }));
      if (classifiers.size === 0)
        throw new UnmaskError(
          "BAD_OPTION",
          "give at least one --mask NAME=FILE, or --classes for zero-shot",
          {
            subject: "--mask",
          },
        );
      const limits = Object.fromEntries(
        Object.entries({
          maxBodyBytes: options.maxBodyBytes,
          maxImageSide: options.maxImageSide,
          maxConcurrent: options.concurrency,
          maxQueued: options.queue,
          requestTimeoutMs: options.timeoutMs,
        }).filter(([, v]) => v !== undefined),
      );
      const server = createInferenceServer({ classifiers, limits });
      const port = await server.listen(options.port, options.host);
      note(
        `unmask serve: listening on http://${options.host}:${port} (masks: ${[...classifiers.keys()].join(", ")})`,
      );
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string) => {
          if (stopping) return;
          stopping = true;
          note(`unmask serve: ${signal}, draining`);
          server
            .close()
            .then(() => model.dispose())
            .then(resolve, resolve);
        };
        process.once("SIGTERM", () => stop("SIGTERM"));
        process.once("SIGINT", () => stop("SIGINT"));
      });
      note("unmask serve: stopped");
    });
}
