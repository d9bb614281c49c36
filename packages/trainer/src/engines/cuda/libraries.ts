/**
 * Finds and opens the CUDA driver (libcuda), cuBLAS and cuBLASLt through koffi. Nothing is compiled at
 * install: a machine without a GPU, a driver or cuBLAS gets one typed error, CUDA_UNAVAILABLE,
 * that lists every path tried, and the cpu engine stays usable.
 *
 * Search order (native-library.ts, as for NCCL): CUDA_PATH/lib64 and /lib, each LD_LIBRARY_PATH
 * entry, the driver's usual folders (libcuda) or the CUDA toolkit's (cuBLAS), then the bare
 * soname (the dynamic loader's own search).
 */
import { join } from "node:path";
import { UnmaskError } from "@unmask/clip";
import { type Koffi, type Library, librarySearchDirs, loadFirstLibrary } from "../../native-library.js";

export type { Koffi, Library };

/** sonames in order of preference (cuBLAS 13 ships with CUDA 13, 12 with CUDA 12). */
const DRIVER_NAMES = ["libcuda.so.1", "libcuda.so"];
const CUBLAS_NAMES = ["libcublas.so.13", "libcublas.so.12", "libcublas.so"];
const CUBLAS_LT_NAMES = ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"];

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

/** Tests: where to look instead of the defaults. */
export interface OpenCudaOptions {
  env?: Record<string, string | undefined>;
  /** Folders searched for libcuda (default: CUDA_PATH, LD_LIBRARY_PATH, the driver's folders). */
  driverDirs?: string[];
  /** Folders searched for cuBLAS (default: CUDA_PATH, LD_LIBRARY_PATH, the toolkit's folders). */
  cublasDirs?: string[];
  /** Also ask the dynamic loader for the bare sonames (default true). */
  loaderSearch?: boolean;
}

function openFirst(
  koffi: Koffi,
  what: string,
  names: string[],
  dirs: string[],
  loaderSearch: boolean | undefined,
): Library {
  return loadFirstLibrary(koffi, {
    paths: dirs.flatMap((dir) => names.map((name) => join(dir, name))),
    names,
    loaderSearch,
    notFound(tried) {
      throw new UnmaskError(
        "CUDA_UNAVAILABLE",
        `${what} not found; tried: ${tried.join("; ")}. Install the NVIDIA driver / CUDA toolkit, set CUDA_PATH or LD_LIBRARY_PATH, or use the cpu engine.`,
        { subject: what },
      );
    },
  });
}

export interface CudaLibraries {
  koffi: Koffi;
  driver: Library;
  cublas: Library;
  /** cuBLASLt (installed with cuBLAS), for GEMM tuning; undefined where it did not load. */
  cublasLt?: Library;
}

/** Opens libcuda, libcublas and (when present) libcublasLt. @throws UnmaskError CUDA_UNAVAILABLE naming every path tried. */
export async function openCudaLibraries(options: OpenCudaOptions = {}): Promise<CudaLibraries> {
  const koffi = await loadKoffi();
  const env = options.env ?? process.env;
  const driver = openFirst(
    koffi,
    "the CUDA driver library (libcuda)",
    DRIVER_NAMES,
    options.driverDirs ?? librarySearchDirs(env, { last: DRIVER_DIRS }),
    options.loaderSearch,
  );
  const toolkitDirs = options.cublasDirs ?? librarySearchDirs(env, { last: TOOLKIT_DIRS });
  const cublas = openFirst(koffi, "cuBLAS (libcublas)", CUBLAS_NAMES, toolkitDirs, options.loaderSearch);
  let cublasLt: Library | undefined;
  try {
    cublasLt = openFirst(koffi, "cuBLASLt (libcublasLt)", CUBLAS_LT_NAMES, toolkitDirs, options.loaderSearch);
  } catch {
    // optional: without it the GEMMs keep cuBLAS's own algorithm choice (no tuning)
  }
  return { koffi, driver, cublas, cublasLt };
}
