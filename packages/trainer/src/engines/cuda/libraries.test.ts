/**
 * CUDA_UNAVAILABLE: the error a machine without libcuda or cuBLAS gets, listing every path tried.
 * Searches only the given folders (no system folders, no loader search), so it holds on a GPU
 * machine too; a stand-in libcuda.so.1 (an empty shared object built with gcc) gets past the
 * driver to the cuBLAS search.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCudaLibraries } from "./libraries.js";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "unmask-cuda-libraries-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("CUDA_UNAVAILABLE", () => {
  it("lists every libcuda path tried, and says how to fix it", async () => {
    const bad = join(dir, "bad");
    mkdirSync(bad);
    writeFileSync(join(bad, "libcuda.so.1"), "not an ELF file");
    const error = await openCudaLibraries({
      driverDirs: [join(dir, "absent"), bad],
      cublasDirs: [],
      loaderSearch: false,
    }).catch((e) => e);
    expect(error.code).toBe("CUDA_UNAVAILABLE");
    expect(error.message).toMatch(/^the CUDA driver library \(libcuda\) not found; tried: /);
    for (const path of [join(dir, "absent", "libcuda.so.1"), join(dir, "absent", "libcuda.so")])
      expect(error.message).toContain(`${path} (absent)`);
    expect(error.message).toMatch(new RegExp(`${join(bad, "libcuda.so.1")} \\((?!absent)`));
    expect(error.message).toContain(`${join(bad, "libcuda.so")} (absent)`);
    expect(error.message).toContain("set CUDA_PATH or LD_LIBRARY_PATH, or use the cpu engine");
  });

  it("names cuBLAS and its paths when the driver loads but cuBLAS does not", async () => {
    const driver = join(dir, "driver");
    mkdirSync(driver);
    writeFileSync(join(driver, "empty.c"), "int unmask_stand_in(void) { return 0; }\n");
    execFileSync("gcc", ["-shared", "-fPIC", "-o", join(driver, "libcuda.so.1"), join(driver, "empty.c")]);
    const error = await openCudaLibraries({
      driverDirs: [driver],
      cublasDirs: [join(dir, "toolkit")],
      loaderSearch: false,
    }).catch((e) => e);
    expect(error.code).toBe("CUDA_UNAVAILABLE");
    expect(error.subject).toBe("cuBLAS (libcublas)");
    for (const name of ["libcublas.so.13", "libcublas.so.12", "libcublas.so"])
      expect(error.message).toContain(`${join(dir, "toolkit", name)} (absent)`);
  });
});
