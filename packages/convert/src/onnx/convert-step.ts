/**
 * The ONNX export as a convert() step: runs on convert's temporary directory after
 * model.safetensors and config.json are complete, so a failed export leaves no model directory.
 */
import type { ConvertProgress, ConvertStep } from "../convert.js";
import type { AttentionKernel } from "./residual-block.js";
import { writeOnnxModels } from "./write-onnx-models.js";

export interface OnnxExportOptions {
  /** Self-contained .onnx files (weights copied in) instead of external data into model.safetensors. */
  embed?: boolean;
  attention?: AttentionKernel;
}

/** Writes vision.onnx and text.onnx; models without a ViT image tower get an `onnx-skipped` event. */
export function onnxExportStep(options: OnnxExportOptions = {}): ConvertStep {
  return {
    name: "onnx",
    async run(context) {
      const onProgress: ((event: ConvertProgress) => void) | undefined = context.onProgress;
      if (context.config.architecture !== "vit") {
        onProgress?.({
          status: "onnx-skipped",
          reason: `the ONNX export covers ViT CLIP models; this one is ${context.config.architecture}`,
        });
        return;
      }
      await writeOnnxModels({
        modelDir: context.dir,
        config: context.config,
        safetensorsPath: context.weightsPath,
        embed: options.embed,
        attention: options.attention,
        onProgress,
      });
    },
  };
}
