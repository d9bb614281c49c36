// Test helper run as a child process by src/resume.test.ts: one train() run of the built package
// on the cpu engine, printing each progress event as a JSON line. A step delay (ms) gives the
// parent time to SIGKILL it in the middle of an epoch; it is awaited, as a GPU step is, so the
// checkpoint written in the background meanwhile makes progress.
import { setTimeout as sleep } from "node:timers/promises";
import { engineFactory, train } from "../dist/index.js";

const [model, data, out, resume, delayMs] = process.argv.slice(2);
const cpu = await engineFactory("cpu");
await train({
  engineFactory: async (engineModel, options) => {
    const engine = await cpu(engineModel, options);
    const step = engine.step.bind(engine);
    engine.step = async (batch, stepOptions) => {
      if (Number(delayMs) > 0) await sleep(Number(delayMs));
      return step(batch, stepOptions);
    };
    return engine;
  },
  model,
  data,
  out,
  resume: resume === "1",
  shots: 4,
  seed: 5,
  epochs: 4,
  batchSize: 4,
  lr: 1e-3,
  onProgress: (event) => {
    if (event.status === "done") return;
    process.stdout.write(`${JSON.stringify(event)}\n`);
  },
});
