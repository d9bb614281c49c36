/**
 * SHA-256 of a file, streamed through one reused buffer so memory stays flat for any file size.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { fail } from "./errors.js";

/** Read size per step: large enough that syscalls do not dominate, small enough to stay flat. */
const CHUNK_BYTES = 4 * 1024 * 1024;

export interface Sha256FileOptions {
  /** Called after each chunk with bytes hashed so far and the file size. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  signal?: AbortSignal;
}

/** Lower-case hex SHA-256 of the file at `path`. */
export async function sha256File(path: string, options: Sha256FileOptions = {}): Promise<string> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    const hash = createHash("sha256");
    const buffer = new Uint8Array(Math.min(CHUNK_BYTES, Math.max(1, size)));
    let done = 0;
    while (done < size) {
      if (options.signal?.aborted) fail("ABORTED", `hashing ${path} was aborted`, path);
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.byteLength, size - done), done);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      done += bytesRead;
      options.onProgress?.(done, size);
    }
    return hash.digest("hex");
  } finally {
    await handle.close();
  }
}
