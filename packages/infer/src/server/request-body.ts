/**
 * Reading an image from a request: the raw body (image/*, application/octet-stream) or the first
 * file part of multipart/form-data, with a hard byte cap that stops reading as soon as it trips
 * (a lying or missing Content-Length changes nothing).
 */
import type { IncomingMessage } from "node:http";
import busboy from "busboy";
import { HttpError } from "./http-error.js";

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(
    413,
    "PAYLOAD_TOO_LARGE",
    `the request body is larger than the ${maxBytes}-byte limit`,
  );
}

/**
 * Bytes of an over-limit body read and discarded so the client (still sending) receives the 413
 * instead of a reset connection; past this many the connection is cut.
 */
export const MAX_DISCARD_BYTES = 64 * 1024 * 1024;

function readRaw(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    let overflow = Number.isFinite(declared) && declared > maxBytes;
    const chunks: Buffer[] = [];
    let total = 0;
    req.on("data", (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxBytes) overflow = true;
      if (!overflow) chunks.push(chunk);
      else if (total > MAX_DISCARD_BYTES) {
        req.destroy();
        reject(tooLarge(maxBytes));
      }
    });
    req.on("end", () => (overflow ? reject(tooLarge(maxBytes)) : resolve(Buffer.concat(chunks, total))));
    req.on("error", (cause) =>
      reject(new HttpError(400, "BAD_REQUEST", `the request body could not be read (${cause.message})`)),
    );
  });
}

function readMultipart(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        limits: { fileSize: maxBytes, files: 1, fields: 20, parts: 21 },
      });
    } catch (cause) {
      reject(
        new HttpError(400, "BAD_MULTIPART", `malformed multipart request (${(cause as Error).message})`),
      );
      return;
    }
    let file: Buffer | null = null;
    let failed = false;
    const fail = (error: HttpError) => {
      if (failed) return;
      failed = true;
      req.unpipe(parser);
      req.resume(); // drain what is left so the connection can answer
      reject(error);
    };
    parser.on("file", (_name, stream) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("limit", () => fail(tooLarge(maxBytes)));
      stream.on("end", () => {
        if (!failed && file === null) file = Buffer.concat(chunks);
      });
    });
    parser.on("error", (cause: Error) =>
      fail(new HttpError(400, "BAD_MULTIPART", `malformed multipart body (${cause.message})`)),
    );
    parser.on("close", () => {
      if (failed) return;
      if (file === null) fail(new HttpError(400, "NO_IMAGE", "the multipart body has no file part"));
      else resolve(file);
    });
    req.pipe(parser);
  });
}

/**
 * @throws HttpError 413 PAYLOAD_TOO_LARGE, 415 UNSUPPORTED_MEDIA_TYPE, 400 BAD_MULTIPART / NO_IMAGE
 */
export async function readImageBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const type = (req.headers["content-type"] ?? "application/octet-stream").toLowerCase();
  let body: Buffer;
  if (type.startsWith("multipart/form-data")) body = await readMultipart(req, maxBytes);
  else if (type.startsWith("image/") || type.startsWith("application/octet-stream"))
    body = await readRaw(req, maxBytes);
  else
    throw new HttpError(
      415,
      "UNSUPPORTED_MEDIA_TYPE",
      `Content-Type ${type} is not accepted: send image bytes (image/*, application/octet-stream) or multipart/form-data`,
    );
  if (body.length === 0) throw new HttpError(400, "NO_IMAGE", "the request has no image bytes");
  return body;
}
