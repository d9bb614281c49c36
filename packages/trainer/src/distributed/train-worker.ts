/**
 * The process entry of one worker of a several-GPU train(): `node train-worker.js <options.json>`,
 * started by train-launch.ts with torchrun's variables (launcher.ts).
 */
import { runTrainWorker } from "./run-train-worker.js";

await runTrainWorker({ optionsPath: process.argv[2] });
