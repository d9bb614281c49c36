// `pnpm test:gpu`: the device suites (src/**/*.gpu.test.ts). They skip, saying why, where no GPU,
// driver or cuBLAS is found; the normal `pnpm test` excludes them.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: { include: ["src/**/*.gpu.test.ts"], testTimeout: 120_000 },
});
