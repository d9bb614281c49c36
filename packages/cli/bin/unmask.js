#!/usr/bin/env node
import { availableParallelism } from "node:os";

// sharp decodes images on libuv's thread pool, which has 4 threads unless this is set before
// the pool starts: give it one per core so decoding a few-shot set uses the whole machine.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));

// Imported after the line above, so nothing touches the pool before its size is set.
const { main } = await import("../dist/main.js");

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`unmask: ${error?.stack ?? error}\n`);
    process.exitCode = 1;
  },
);
