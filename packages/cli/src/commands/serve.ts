/**
 * `unmask serve --model DIR --mask NAME=FILE ... [--classes a,b] [--port 8080] [--host 127.0.0.1]`
 * Serves classification over HTTP (see @unmask/infer createInferenceServer). Inference runs on
 * `--workers` worker threads (createWorkerClassifiers), so the event loop keeps accepting
 * connections, answering /healthz and timing requests out during a classification. Within a
 * worker all masks share one base model's weights. SIGTERM / SIGINT: stop accepting, finish
 * in-flight requests, stop the workers, exit 0.
 */
import { availableParallelism } from "node:os";
import { createInferenceServer, createWorkerClassifiers } from "@unmask/infer";
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
    .option(
      "--workers <n>",
      "inference worker threads, each with its own copy of the model; onnxruntime already uses every core within one run, so more workers mostly add memory",
      positiveInt("--workers"),
      1,
    )
    .action(async (options) => {
      const classes = await readClassList(options);
      const specs: { name: string; mask?: string }[] = [];
      for (const spec of options.mask as string[]) {
        const eq = spec.indexOf("=");
        if (eq <= 0 || eq === spec.length - 1)
          throw new UnmaskError("BAD_OPTION", `--mask takes NAME=FILE, not ${JSON.stringify(spec)}`, {
            subject: "--mask",
          });
        const name = spec.slice(0, eq);
        if (specs.some((s) => s.name === name))
          throw new UnmaskError("BAD_OPTION", `mask name ${name} is given twice`, { subject: "--mask" });
        specs.push({ name, mask: spec.slice(eq + 1) });
      }
      if (classes) specs.push({ name: "zero-shot" });
      if (specs.length === 0)
        throw new UnmaskError(
          "BAD_OPTION",
          "give at least one --mask NAME=FILE, or --classes for zero-shot",
          {
            subject: "--mask",
          },
        );
      const workers: number = options.workers;
      // Each worker's onnxruntime gets its share of the cores, so N workers do not oversubscribe.
      const intraOpNumThreads =
        workers > 1 ? Math.max(1, Math.floor(availableParallelism() / workers)) : undefined;
      const pool = await createWorkerClassifiers({
        model: options.model,
        classifiers: specs,
        classes,
        template: options.template,
        executionProvider: options.device,
        intraOpNumThreads,
        workers,
        onEvent: (event) => {
          if (event.type === "worker-exit")
            note(
              `unmask serve: classifier worker ${event.worker} died (${event.reason}); ${event.failedRequests} request(s) answered 503`,
            );
          else if (event.type === "worker-restart")
            note(`unmask serve: restarting classifier worker ${event.worker} in ${event.delayMs} ms`);
        },
      });
      const classifiers = pool.classifiers;
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
            .then(() => pool.dispose())
            .then(resolve, resolve);
        };
        process.once("SIGTERM", () => stop("SIGTERM"));
        process.once("SIGINT", () => stop("SIGINT"));
      });
      note("unmask serve: stopped");
    });
}
