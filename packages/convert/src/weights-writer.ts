/**
 * Streams canonical tensors into model.safetensors with the header written last.
 *
 * The header holds the source's SHA-256 and the model name it identifies, which are known only
 * when hashing finishes; hashing runs alongside the tensor copy, so the data section is written
 * first. Offsets inside the data section do not depend on the metadata, only the header length
 * does: the header is laid out for every candidate metadata (each possible model name, a
 * placeholder hash of the same length), the longest fixes the data start, and the final header
 * is padded with spaces to that length (JSON whitespace; the reference writer pads the same way).
 * Layout, alignment and per-tensor byte checks are @unmask/clip's `layoutSafetensors`.
 *
 * I/O: tensors are consecutive in layout order, so they are packed into two small staging
 * buffers, and each buffer goes out in one write while the other fills. A producer is handed the
 * exact region its tensor occupies (`into`) and may read straight into it; bytes it returns
 * elsewhere are copied in. A tensor larger than a staging buffer comes in pieces from its
 * `stream` when it has one (no buffer of its size at all), else whole from `data()` and is
 * written from there. The data section is flushed to disk (fdatasync) as soon as it is complete,
 * before the final metadata is awaited, so the flush can overlap the hashing; the header is then
 * written and flushed on its own.
 */
import { open } from "node:fs/promises";
import type { DType } from "@unmask/clip";
import { layoutSafetensors, UnmaskError } from "@unmask/clip";
import type { RangeReader } from "./zip-reader.js";

/** Size of each of the two staging buffers: large sequential writes, little memory to fault in. */
export const STAGING_BYTES = 8 * 1024 * 1024;
/** A background fdatasync starts once this much has been written since the last one started. */
export const SYNC_EVERY_BYTES = 64 * 1024 * 1024;

export interface WeightsTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /**
   * The tensor's bytes. `into`, when given, is exactly the region of a staging buffer the tensor
   * goes to: returning `into` itself avoids a copy. Called in layout order, one at a time.
   */
  data: (into?: Uint8Array) => Promise<Uint8Array> | Uint8Array;
  /** The same bytes in consecutive pieces (optional; used for tensors larger than a staging buffer). */
  stream?: () => RangeReader | undefined;
}

export interface WriteWeightsOptions {
  /** Every metadata the header may end up holding (for sizing); the final one must be among the lengths. */
  candidateMetadata: Record<string, string>[];
  /** The metadata to write, resolved after all tensor bytes are written. */
  finalMetadata: () => Promise<Record<string, string>>;
  onProgress?: (event: { tensor: string; bytesDone: number; bytesTotal: number }) => void;
}

export async function writeWeightsFile(
  path: string,
  tensors: readonly WeightsTensor[],
  options: WriteWeightsOptions,
): Promise<number> {
  const candidates = options.candidateMetadata.map((m) => layoutSafetensors(tensors, m));
  const { order, offsets } = candidates[0];
  const reservedHeaderBytes = Math.max(...candidates.map((c) => c.headerBytes.byteLength));
  const dataStart = 8 + reservedHeaderBytes;
  const dataBytes = candidates[0].totalBytes - 8 - candidates[0].headerBytes.byteLength;
  const stagingBytes = Math.max(1, Math.min(dataBytes, STAGING_BYTES));
  const staging = [Buffer.allocUnsafeSlow(stagingBytes), Buffer.allocUnsafeSlow(stagingBytes)];
  const handle = await open(path, "w");
  try {
    const writeAll = async (bytes: Uint8Array, position: number) => {
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position + done);
        done += bytesWritten;
      }
    };
    let bytesDone = 0;
    // One staging buffer fills while the other's write is in flight.
    let current = 0;
    let fill = 0; // bytes used in staging[current]
    let fillStart = 0; // data-section offset of staging[current][0]
    let staged: { name: string; bytes: number }[] = []; // tensors in staging[current], for progress
    const inFlight: (Promise<void> | null)[] = [null, null];
    let lastWrite: Promise<void> = Promise.resolve();
    // Background flushes while the copy goes on (one at a time), so that the final one has
    // little left to write back.
    let syncing = null as Promise<void> | null;
    let unsynced = 0;
    const syncInBackground = () => {
      if (syncing || unsynced < SYNC_EVERY_BYTES) return;
      unsynced = 0;
      syncing = handle.datasync().finally(() => {
        syncing = null;
      });
      syncing.catch(() => {}); // a failure shows again in the final datasync
    };
    const flush = async () => {
      if (fill === 0) return;
      unsynced += fill;
      const written = staged;
      const previous = lastWrite;
      const write = writeAll(staging[current].subarray(0, fill), dataStart + fillStart);
      // Progress in layout order: after this write and every earlier one.
      lastWrite = Promise.all([write, previous]).then(() => {
        for (const t of written) {
          bytesDone += t.bytes;
          options.onProgress?.({ tensor: t.name, bytesDone, bytesTotal: dataBytes });
        }
      });
      lastWrite.catch(() => {}); // awaited before the buffer is reused or the file is finished
      inFlight[current] = lastWrite;
      current = 1 - current;
      fillStart += fill;
      fill = 0;
      staged = [];
      await inFlight[current]; // the other buffer must be written before it is refilled
      inFlight[current] = null;
      syncInBackground();
    };
    const checkLength = (t: WeightsTensor, bytes: number, length: number) => {
      if (bytes !== length)
        throw new UnmaskError(
          "SAFETENSORS_BAD_OFFSETS",
          `${path}: tensor ${t.name} has ${bytes} bytes, dtype ${t.dtype} x shape [${t.shape.join(", ")}] needs ${length}`,
          { subject: t.name },
        );
    };
    for (let k = 0; k < order.length; k++) {
      const i = order[k];
      const t = tensors[i];
      const [begin, end] = offsets[i];
      const length = end - begin;
      if (length <= stagingBytes) {
        if (fill + length > stagingBytes) await flush();
        const into = staging[current].subarray(fill, fill + length);
        const data = await t.data(into);
        checkLength(t, data.byteLength, length);
        if (data.buffer !== into.buffer || data.byteOffset !== into.byteOffset) into.set(data);
        fill += length;
        staged.push({ name: t.name, bytes: length });
        continue;
      }
      const pieces = t.stream?.();
      if (pieces) {
        checkLength(t, pieces.remaining, length);
        // Pieces fill the staging buffers like small tensors; the reader checks the whole
        // tensor (CRC-32) on its last piece, before the file can be finished.
        while (pieces.remaining > 0) {
          if (fill === stagingBytes) await flush();
          const into = staging[current].subarray(fill, Math.min(stagingBytes, fill + pieces.remaining));
          const piece = await pieces.next(into);
          if (piece.buffer !== into.buffer || piece.byteOffset !== into.byteOffset) into.set(piece);
          fill += into.byteLength;
        }
        staged.push({ name: t.name, bytes: length });
        continue;
      }
      // Whole, from the producer's own buffer: written in place after what is staged before it.
      await flush();
      const data = await t.data();
      checkLength(t, data.byteLength, length);
      const previous = lastWrite;
      const write = writeAll(data, dataStart + begin);
      lastWrite = Promise.all([write, previous]).then(() => {
        bytesDone += length;
        options.onProgress?.({ tensor: t.name, bytesDone, bytesTotal: dataBytes });
      });
      lastWrite.catch(() => {});
      await lastWrite; // one such tensor in memory at a time
      fillStart += length;
    }
    await flush();
    await lastWrite;
    await syncing?.catch(() => {});
    await handle.datasync(); // the data section, while the hash may still be running
    const final = layoutSafetensors(tensors, await options.finalMetadata());
    if (final.headerBytes.byteLength > reservedHeaderBytes)
      throw new UnmaskError(
        "SAFETENSORS_BAD_HEADER",
        `${path}: final header (${final.headerBytes.byteLength} bytes) outgrew its reserved ${reservedHeaderBytes} bytes`,
        { subject: path },
      );
    const header = new Uint8Array(8 + reservedHeaderBytes).fill(0x20);
    new DataView(header.buffer).setBigUint64(0, BigInt(reservedHeaderBytes), true);
    header.set(final.headerBytes, 8);
    await writeAll(header, 0);
    await handle.datasync(); // durable before the directory is renamed into place
    return dataStart + dataBytes;
  } finally {
    await handle.close();
  }
}
