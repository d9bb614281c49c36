/** Positioned reads from a file handle that either return every byte asked for or throw. */
import type { FileHandle } from "node:fs/promises";
import { type ConvertErrorCode, fail } from "./errors.js";

/**
 * Reads exactly `length` bytes at `position`, into `into` when it is given and large enough.
 * A file that ends first throws `code` (ZIP_TRUNCATED, PICKLE_TRUNCATED, ...) naming `source`.
 */
export async function readExactly(
  handle: FileHandle,
  position: number,
  length: number,
  code: ConvertErrorCode,
  source: string,
  into?: Uint8Array,
): Promise<Uint8Array> {
  let out: Uint8Array;
  if (into && into.byteLength >= length) out = into.subarray(0, length);
  else {
    // Not zero-filled: every byte is overwritten by the read below (or the read fails).
    const slow = Buffer.allocUnsafeSlow(length);
    out = new Uint8Array(slow.buffer, slow.byteOffset, length);
  }
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0)
      fail(
        code,
        `${source}: file ends at ${position + done} while reading ${length} bytes at ${position}`,
        source,
      );
    done += bytesRead;
  }
  return out;
}
