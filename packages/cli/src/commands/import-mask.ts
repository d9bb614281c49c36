/**
 * `unmask import-mask CHECKPOINT --model DIR --out mask.umask [--json]`: a mask trained by the
 * published R-AMT code (`...mask_real` entries of its torch.save checkpoint, read with the safe
 * pickle reader) -> a .umask file for the model directory DIR (shapes, fingerprint and name
 * come from DIR/model.safetensors).
 */
import { importMaskToFile } from "@unmask/convert";
import type { Command } from "commander";
import { formatBytes, printJson, printLine } from "../ui.js";

export function register(program: Command): void {
  program
    .command("import-mask")
    .description("import a mask from a published R-AMT checkpoint (model.pth.tar-N) into a .umask file")
    .argument("<checkpoint>", "the R-AMT torch.save checkpoint")
    .requiredOption("--model <dir>", "the canonical model directory the mask was trained on (unmask convert)")
    .requiredOption("--out <file>", "the .umask file to write")
    .option("--json", "print one JSON object with the result")
    .action(async (checkpoint: string, options: { model: string; out: string; json?: boolean }) => {
      const result = await importMaskToFile(checkpoint, options.out, { modelDir: options.model });
      const tensors = result.mask.tensors.map((t) => ({
        name: t.name,
        officialKey: result.officialKeys.get(t.name),
        shape: t.shape,
      }));
      if (options.json) {
        printJson({
          out: options.out,
          bytes: result.bytes,
          baseModel: result.mask.baseModel,
          parameters: result.parameters,
          zeros: result.zeros,
          tensors,
        });
        return;
      }
      const percent = ((100 * result.zeros) / result.parameters).toFixed(3);
      printLine(`${options.out}: ${formatBytes(result.bytes)}, ${tensors.length} tensors`);
      printLine(
        `base model   ${result.mask.baseModel.name ?? "(unnamed)"}, fingerprint ${result.mask.baseModel.fingerprint}`,
      );
      printLine(
        `masked       ${result.parameters.toLocaleString("en-US")} parameters, ${result.zeros.toLocaleString("en-US")} masked off (${percent}%)`,
      );
      for (const t of tensors) printLine(`  ${t.officialKey} -> ${t.name} [${t.shape.join("x")}]`);
    });
}
