/**
 * Atomic output directories: everything is written into a hidden temporary directory beside the
 * target, which is renamed into place only when complete. A failure (or an abort) removes the
 * temporary directory, so the target either holds a complete model or is untouched.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fail } from "./errors.js";

/** Refuses an existing non-empty directory (unless `overwrite`) or an existing file. */
export async function checkOutputDir(
  outDir: string,
  overwrite: boolean,
): Promise<"absent" | "empty" | "replace"> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(outDir);
  } catch {
    return "absent";
  }
  if (!info.isDirectory()) fail("OUTPUT_EXISTS", `${outDir} exists and is not a directory`, outDir);
  if ((await readdir(outDir)).length === 0) return "empty";
  if (!overwrite)
    fail(
      "OUTPUT_EXISTS",
      `${outDir} exists and is not empty (pass overwrite: true, or --force on the command line)`,
      outDir,
    );
  return "replace";
}

/** A fresh hidden directory beside `outDir` (same filesystem, so the final rename is atomic). */
export async function makeTempDirFor(outDir: string): Promise<string> {
  const target = resolve(outDir);
  await mkdir(dirname(target), { recursive: true });
  const tmp = join(
    dirname(target),
    `.${basename(target)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`,
  );
  await mkdir(tmp);
  return tmp;
}

/** Moves a completed temporary directory onto `outDir`, replacing an old one if allowed. */
export async function commitDir(tmp: string, outDir: string, overwrite: boolean): Promise<void> {
  const state = await checkOutputDir(outDir, overwrite);
  if (state === "absent") return rename(tmp, outDir);
  if (state === "empty") {
    await rm(outDir, { recursive: true });
    return rename(tmp, outDir);
  }
  const backup = `${tmp}.old`;
  await rename(outDir, backup);
  try {
    await rename(tmp, outDir);
  } catch (error) {
    await rename(backup, outDir);
    throw error;
  }
  await rm(backup, { recursive: true, force: true });
}

/**
 * Runs `fill(tmpDir)` and commits the directory to `outDir`; on any error the temporary
 * directory is removed and the error rethrown.
 */
export async function writeDirAtomic<T>(
  outDir: string,
  overwrite: boolean,
  fill: (tmpDir: string) => Promise<T>,
): Promise<T> {
  await checkOutputDir(outDir, overwrite);
  const tmp = await makeTempDirFor(outDir);
  try {
    const result = await fill(tmp);
    await commitDir(tmp, outDir, overwrite);
    return result;
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
}
