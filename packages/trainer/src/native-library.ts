/**
 * Finding a shared library for koffi, the way every native binding of the package does it (NCCL
 * in distributed/nccl.ts; libcuda and cuBLAS in engines/cuda/libraries.ts search the same way):
 * each candidate path in order (absent ones skipped), then the bare sonames through the dynamic
 * loader's own search. When nothing loads, the caller gets every path tried with the reason, to
 * throw its own typed error (CUDA_UNAVAILABLE, NCCL_UNAVAILABLE).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type koffiType from "koffi";

export type Koffi = typeof koffiType;
export type Library = ReturnType<Koffi["load"]>;

/**
 * The folders to search, in order: `first`, CUDA_PATH/lib64 and /lib, each LD_LIBRARY_PATH
 * entry, then `last` (the usual system folders); duplicates dropped.
 */
export function librarySearchDirs(
  env: Record<string, string | undefined>,
  { first = [], last = [] }: { first?: readonly string[]; last?: readonly string[] },
): string[] {
  const dirs: string[] = [...first];
  if (env.CUDA_PATH) dirs.push(join(env.CUDA_PATH, "lib64"), join(env.CUDA_PATH, "lib"));
  for (const d of (env.LD_LIBRARY_PATH ?? "").split(":")) if (d) dirs.push(d);
  dirs.push(...last);
  return [...new Set(dirs)];
}

export interface LoadLibraryOptions {
  /** Full paths to try first, in order. */
  paths: readonly string[];
  /** sonames for the dynamic loader's search, tried after the paths. */
  names: readonly string[];
  /** Ask the dynamic loader for the bare sonames (default true). */
  loaderSearch?: boolean;
  /** Throws the caller's error, given each path tried with why it failed. */
  notFound(tried: string[]): never;
}

/** Loads the first library that opens. */
export function loadFirstLibrary(koffi: Koffi, options: LoadLibraryOptions): Library {
  const tried: string[] = [];
  for (const path of options.paths) {
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
  if (options.loaderSearch ?? true)
    for (const name of options.names) {
      try {
        return koffi.load(name);
      } catch (error) {
        tried.push(`${name} via the loader (${String((error as Error).message ?? error)})`);
      }
    }
  return options.notFound(tried);
}
