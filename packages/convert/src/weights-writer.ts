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
 * Producers are called in layout order, one ahead of the write: while tensor k is written,
 * tensor k+1 is produced, and tensor k+2 is produced only after tensor k is written. A producer
 * may therefore hand out views of two alternating scratch buffers.
 */
import { open } from "node:fs/promises";
import { layoutSafetensors, type TensorToWrite, UnmaskError } from "@unmask/clip";

export interface WriteWeightsOptions {
  /** Every metadata the header may end up holding (for sizing); the final one must be among the lengths. */
  candidateMetadata: Record<string, string>[];
  /** The metadata to write, resolved after all tensor bytes are written. */
  finalMetadata: () => Promise<Record<string, string>>;
  onProgress?: (event: { tensor: string; bytesDone: number; bytesTotal: number }) => void;
}

export async function writeWeightsFile(
  path: string,
  tensors: readonly TensorToWrite[],
  options: WriteWeightsOptions,
): Promise<number> {
  const candidates = options.candidateMetadata.map((m) => layoutSafetensors(tensors, m));
  const { order, offsets } = candidates[0];
  const reservedHeaderBytes = Math.max(...candidates.map((c) => c.headerBytes.byteLength));
  const dataStart = 8 + reservedHeaderBytes;
  const dataBytes = candidates[0].totalBytes - 8 - candidates[0].headerBytes.byteLength;
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
    // Read tensor k+1 while tensor k is written: the source read and the output write overlap,
    // and at most two tensors are in memory.
    const produce = (k: number): Promise<Uint8Array> | null => {
      if (k >= order.length) return null;
      const t = tensors[order[k]];
      const promise = Promise.resolve(typeof t.data === "function" ? t.data() : t.data);
      promise.catch(() => {}); // awaited in turn below; an early write error must not leave it unhandled
      return promise;
    };
    let next = produce(0);
    for (let k = 0; k < order.length; k++) {
      const i = order[k];
      const t = tensors[i];
      const data = await next!;
      next = produce(k + 1);
      const [begin, end] = offsets[i];
      if (data.byteLength !== end - begin)
        throw new UnmaskError(
          "SAFETENSORS_BAD_OFFSETS",
          `${path}: tensor ${t.name} has ${data.byteLength} bytes, dtype ${t.dtype} x shape [${t.shape.join(", ")}] needs ${end - begin}`,
          { subject: t.name },
        );
      await writeAll(data, dataStart + begin);
      bytesDone += data.byteLength;
      options.onProgress?.({ tensor: t.name, bytesDone, bytesTotal: dataBytes });
    }
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
