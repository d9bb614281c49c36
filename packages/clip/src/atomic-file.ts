/**
 * Atomic output: write to a temporary name beside the target, then rename. A crash or an error
 * leaves either the old file or nothing, never a partial file.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
}

/** Writes through `write(handle)` to a temporary file, fsyncs, renames over `path`. */
export async function writeFileAtomic(
  path: string,
  contents: Uint8Array | string | ((handle: import("node:fs/promises").FileHandle) => Promise<void>),
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = temporaryPathFor(path);
  const handle = await open(tmp, "w");
  try {
    if (typeof contents === "function") await contents(handle);
    else await handle.writeFile(contents);
    await handle.sync();
    await handle.close();
    await rename(tmp, path);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw error;
  }
}
