/**
 * The `unmask` command line. Each subcommand lives in its own module under commands/ and is
 * registered here. Data goes to stdout, progress and messages to stderr; `--json` everywhere.
 */

import { isUnmaskError } from "@unmask/clip";
import { Command, CommanderError } from "commander";
import * as convertCommand from "./commands/convert.js";
import * as demoCommand from "./commands/demo.js";
import * as evalCommand from "./commands/eval.js";
import * as importMaskCommand from "./commands/import-mask.js";
import * as inspectCommand from "./commands/inspect.js";
import * as predictCommand from "./commands/predict.js";
import * as serveCommand from "./commands/serve.js";
import * as trainCommand from "./commands/train.js";

export async function main(argv: string[]): Promise<number> {
  const program = new Command("unmask")
    .description(
      "Regularized mask tuning (R-AMT) of CLIP: convert, train, inspect, predict, evaluate, serve.",
    )
    .version("0.1.0")
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });
  const commandModules: { register: (program: Command) => void }[] = [
    inspectCommand,
    convertCommand,
    importMaskCommand,
    trainCommand,
    evalCommand,
    predictCommand,
    serveCommand,
    demoCommand,
  ];
  for (const m of commandModules) m.register(program);
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (isUnmaskError(error)) {
      process.stderr.write(`unmask: error ${error.code}: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
