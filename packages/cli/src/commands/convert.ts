/**
 * `unmask convert IN --out DIR [--dtype fp16|fp32] [--force] [--name NAME] [--no-onnx] [--onnx-embed] [--json]`:
 * any supported CLIP checkpoint (OpenAI .pt, torch.save, legacy, Hugging Face) -> the canonical
 * model directory. A progress bar on stderr, a summary on stdout (one JSON object with --json).
 * Ctrl-C aborts cleanly: the half-written temporary directory is removed, DIR is untouched.
 */
import { type ConvertProgress, type ConvertResult, convert } from "@unmask/convert";
import type { Command } from "commander";
import { type Bar, formatBytes, note, printJson, printLine, progressBar } from "../ui.js";

interface ConvertCliOptions {
  out: string;
  dtype?: string;
  force?: boolean;
  name?: string;
  onnx: boolean;
  onnxEmbed?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command("convert")
    .description(
      "convert a CLIP checkpoint (OpenAI .pt, torch.save, legacy torch, Hugging Face) to a model directory",
    )
    .argument("<input>", "checkpoint file, or a directory holding model.safetensors (+ config.json)")
    .requiredOption(
      "--out <dir>",
      "the model directory to write (model.safetensors, config.json, vision.onnx, text.onnx)",
    )
    .option(
      "--dtype <dtype>",
      "fp16 or fp32 for every floating tensor (default: fp16 if the source has fp16 weights)",
    )
    .option("--force", "replace a non-empty output directory")
    .option("--name <name>", "model name to record when the file is not one of OpenAI's releases")
    .option("--no-onnx", "write only the weights and config.json (no vision.onnx / text.onnx)")
    .option("--onnx-embed", "copy the weights into the .onnx files instead of referencing model.safetensors")
    .option("--json", "print one JSON object with the result")
    .action(async (input: string, options: ConvertCliOptions) => {
      if (options.dtype !== undefined && options.dtype !== "fp16" && options.dtype !== "fp32") {
        note(`unmask convert: --dtype must be fp16 or fp32, not ${options.dtype}`);
        process.exitCode = 1;
        return;
      }
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once("SIGINT", onSigint);
      let bar: Bar | undefined;
      try {
        const result = await convert(input, options.out, {
          dtype: options.dtype as "fp16" | "fp32" | undefined,
          overwrite: options.force,
          modelName: options.name,
          onnx: options.onnx ? { embed: options.onnxEmbed } : false,
          signal: controller.signal,
          onProgress: (event: ConvertProgress) => {
            if (options.json) return;
            if (event.status === "read-header")
              note(`reading ${event.path} (${event.format}, ${event.tensorCount} tensors)`);
            else if (event.status === "tensor") {
              bar ??= progressBar("convert", event.bytesTotal, {
                format: "convert [{bar}] {percentage}% | {done} / {total_size} | {tensor}",
              });
              bar.update(event.bytesDone, {
                done: formatBytes(event.bytesDone),
                total_size: formatBytes(event.bytesTotal),
                tensor: event.name,
              });
            } else if (event.status === "step") {
              bar?.stop();
              bar = undefined;
              note(`writing ${event.name} ...`);
            } else if (event.status === "onnx-skipped") note(`onnx skipped: ${event.reason}`);
          },
        });
        bar?.stop();
        if (options.json) printJson(toJson(result));
        else for (const line of formatResult(result)) printLine(line);
      } finally {
        bar?.stop();
        process.off("SIGINT", onSigint);
      }
    });
}

export function toJson(result: ConvertResult): Record<string, unknown> {
  return {
    outDir: result.outDir,
    modelName: result.modelName,
    official: result.official,
    sourceSha256: result.sourceSha256,
    sourceFormat: result.sourceFormat,
    dtype: result.dtype,
    tensors: result.tensorCount,
    weightsBytes: result.weightsBytes,
    files: result.files,
    config: result.config,
  };
}

export function formatResult(r: ConvertResult): string[] {
  const c = r.config;
  const vision =
    c.architecture === "vit"
      ? `ViT ${c.imageResolution}px, patch ${c.visionPatchSize}, width ${c.visionWidth}, ${c.visionLayers} layers`
      : `ResNet ${c.imageResolution}px, width ${c.visionWidth}, layers ${(c.visionLayers as number[]).join("/")}`;
  return [
    `${r.outDir}: ${r.tensorCount} tensors, ${r.dtype}, ${formatBytes(r.weightsBytes)} of weights`,
    `model        ${r.modelName ?? "(unnamed)"}${r.official ? " (OpenAI release, SHA-256 verified)" : ""}`,
    `source       ${r.sourceFormat}, sha256 ${r.sourceSha256}`,
    `vision       ${vision}`,
    `text         width ${c.transformerWidth}, ${c.transformerLayers} layers, context ${c.contextLength}, vocab ${c.vocabSize}`,
    `embed        ${c.embedDim}`,
    `files        ${r.files.join(", ")}`,
  ];
}
