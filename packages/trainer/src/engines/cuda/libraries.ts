/**
 * Finds and opens the CUDA driver (libcuda) and cuBLAS through koffi. Nothing is compiled at
 * install: a machine without a GPU, a driver or cuBLAS gets one typed error, CUDA_UNAVAILABLE,
 * that lists every path tried, and the cpu engine stays usable.
 *
 * Search order: CUDA_PATH/lib64, each LD_LIBRARY_PATH entry, the driver's usual folders, the
 * CUDA toolkit's usual folders, then the bare soname (the dynamic loader's own search).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { UnmaskError } from "@unmask/clip";
import type koffiType from "koffi";

export type Koffi = typeof koffiType;
export type Library = ReturnType<Koffi["load"]>;

/** sonames in order of preference (cuBLAS 13 ships with CUDA 13, 12 with CUDA 12). */
const DRIVER_NAMES = ["libcuda.so.1", "libcuda.so"];
const CUBLAS_NAMES = ["libcublas.so.13", "libcublas.so.12", "libcublas.so"];

const DRIVER_DIRS = [
  "/usr/local/nvidia/lib64",
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib64",
  "/usr/lib/wsl/lib",
];
const TOOLKIT_DIRS = [
  "/usr/local/cuda/lib64",
  "/usr/local/cuda/targets/x86_64-linux/lib",
  "/usr/lib/x86_64-linux-gnu",
];

let koffiModule: Koffi | undefined;

/** koffi itself, loaded lazily so that importing the engine never touches native code. */
export async function loadKoffi(): Promise<Koffi> {
  if (koffiModule) return koffiModule;
  try {
    koffiModule = (await import("koffi")).default as Koffi;
  } catch (cause) {
    throw new UnmaskError(
      "CUDA_UNAVAILABLE",
      `the cuda engine needs koffi's native module: ${String(cause)}`,
      {
        cause,
        subject: "koffi",
      },
    );
  }
  return koffiModule;
}

function searchDirs(extra: string[]): string[] {
  const dirs: string[] = [];
  if (process.env.CUDA_PATH)
    dirs.push(join(process.env.CUDA_PATH, "lib64"), join(process.env.CUDA_PATH, "lib"));
  for (const d of (process.env.LD_LIBRARY_PATH ?? "").split(":")) if (d) dirs.push(d);
  dirs.push(...extra);
  return [...new Set(dirs)];
}

function openFirst(koffi: Koffi, what: string, names: string[], dirs: string[]): Library {
  const tried: string[] = [];
  for (const dir of dirs)
    for (const name of names) {
      const path = join(dir, name);
      if (!existsSync(path)) {
        tried.push(`${path} (absent)`);
        continue;
      }
      try {
        return koffi.load(path);
      } catch (error) {
        tried.push(`${path} (${String((error as Error).message ?? error)})`);
      }
    }
  for (const name of names) {
    try {
      return koffi.load(name);
    } catch (error) {
      tried.push(`${name} via the loader (${String((error as Error).message ?? error)})`);
    }
  }
  throw new UnmaskError(
    "CUDA_UNAVAILABLE",
    `${what} not found; tried: ${tried.join("; ")}. Install the NVIDIA driver / CUDA toolkit, set CUDA_PATH or LD_LIBRARY_PATH, or use the cpu engine.`,
    { subject: what },
  );
}

export interface CudaLibraries {
  koffi: Koffi;
  driver: Library;
  cublas: Library;
}

/** Opens libcuda and libcublas. @throws UnmaskError CUDA_UNAVAILABLE naming every path tried. */
export async function openCudaLibraries(): Promise<CudaLibraries> {
  const koffi = await loadKoffi();
  const driver = openFirst(koffi, "the CUDA driver library (libcuda)", DRIVER_NAMES, searchDirs(DRIVER_DIRS));
  const cublas = openFirst(koffi, "cuBLAS (libcublas)", CUBLAS_NAMES, searchDirs(TOOLKIT_DIRS));
  return { koffi, driver, cublas };
}
