import { defineConfig } from "vitest/config";

// One file at a time: the CI machine has two cores and each file spawns the CLI or trains.
export default defineConfig({
  test: {
    testTimeout: 300_000,
    hookTimeout: 300_000,
    fileParallelism: false,
    setupFiles: ["./setup.ts"],
  },
});
