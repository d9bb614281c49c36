// Test helper run as a child process by src/resume.test.ts: one train() run of the built package
// on the cpu engine, printing each progress event as a JSON line. A step delay (ms) gives the
// parent time to SIGKILL it in the middle of an epoch.
import { train } from "../dist/index.js";

const [model, data, out, resume, delayMs] = process.argv.slice(2);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
await train({
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
    if (event.status === "step" && Number(delayMs) > 0) Atomics.wait(sleeper, 0, 0, Number(delayMs));
  },
});
