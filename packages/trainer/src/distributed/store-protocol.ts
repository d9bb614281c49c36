/**
 * The wire format of the rendezvous store (tcp-store.ts): length-prefixed binary frames over TCP.
 *
 *   frame    = u32 bodyBytes (big-endian) | body
 *   request  = u8 op | u32 id | u16 keyBytes | key (UTF-8) | operand
 *                SET: u32 valueBytes | value     GET: u32 waitMs     ADD: i64 delta     DELETE: -
 *   response = u8 status | u32 id | payload
 *                OK: SET -, GET u32 valueBytes | value, ADD i64 total, DELETE u8 existed
 *                TIMEOUT: -      ERROR: u16 codeBytes | code | u32 messageBytes | message
 *
 * Threat model: the store listens on a TCP port that other hosts can reach, so a peer may send
 * anything. Every length is checked against its named cap and against the bytes left before
 * anything is allocated or read; a frame with trailing bytes is rejected. A connection that
 * breaks the protocol is closed (StoreProtocolError), never crashes the server.
 */
import { UnmaskError } from "@unmask/clip";

/** Keys are short paths such as "nccl/unique-id" or "barrier/epoch/3/count". */
export const MAX_KEY_BYTES = 512;
/** Values are small (a 128-byte NCCL id, JSON progress, a state hash); 16 MiB bounds one frame's memory. */
export const MAX_VALUE_BYTES = 16 << 20;
/** The largest legal body: a SET with the longest key and value. */
export const MAX_BODY_BYTES = 1 + 4 + 2 + MAX_KEY_BYTES + 4 + MAX_VALUE_BYTES;
/** A server-side wait never exceeds an hour; clients that want longer ask again. */
export const MAX_WAIT_MS = 3_600_000;
const MAX_ERROR_TEXT_BYTES = 4096;

export const Op = { set: 1, get: 2, add: 3, delete: 4 } as const;
export type OpCode = (typeof Op)[keyof typeof Op];
export const Status = { ok: 0, timeout: 1, error: 2 } as const;

export type StoreRequest =
  | { op: typeof Op.set; id: number; key: string; value: Uint8Array }
  | { op: typeof Op.get; id: number; key: string; waitMs: number }
  | { op: typeof Op.add; id: number; key: string; delta: bigint }
  | { op: typeof Op.delete; id: number; key: string };

export type StoreResponse =
  | { status: typeof Status.ok; id: number; payload: Uint8Array }
  | { status: typeof Status.timeout; id: number }
  | { status: typeof Status.error; id: number; code: string; message: string };

/** A malformed frame: the peer does not speak this protocol (or is hostile). */
export function protocolError(message: string): UnmaskError {
  return new UnmaskError("STORE_PROTOCOL", `rendezvous store: ${message}`, { subject: "frame" });
}

/** Reads fields of one body; every read checks `n` bytes are left, with the same `n` in the message. */
class Cursor {
  private offset = 0;
  constructor(private readonly bytes: Uint8Array) {}
  private take(n: number, what: string): number {
    if (n > this.bytes.length - this.offset)
      throw protocolError(
        `${what} needs ${n} bytes at offset ${this.offset}, ${this.bytes.length - this.offset} left`,
      );
    const at = this.offset;
    this.offset += n;
    return at;
  }
  private view(): DataView {
    return new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }
  u8(what: string): number {
    return this.bytes[this.take(1, what)];
  }
  u16(what: string): number {
    return this.view().getUint16(this.take(2, what));
  }
  u32(what: string): number {
    return this.view().getUint32(this.take(4, what));
  }
  i64(what: string): bigint {
    return this.view().getBigInt64(this.take(8, what));
  }
  bytesOf(n: number, what: string): Uint8Array {
    const at = this.take(n, what);
    return this.bytes.subarray(at, at + n);
  }
  end(): void {
    if (this.offset !== this.bytes.length)
      throw protocolError(`${this.bytes.length - this.offset} trailing bytes at offset ${this.offset}`);
  }
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

function text(bytes: Uint8Array, what: string): string {
  try {
    return fromUtf8.decode(bytes);
  } catch {
    throw protocolError(`${what} is not valid UTF-8`);
  }
}

/** UTF-8 bytes of a key. @throws UnmaskError STORE_LIMIT when empty or longer than MAX_KEY_BYTES */
export function keyBytes(key: string): Uint8Array {
  const bytes = utf8.encode(key);
  if (bytes.length === 0 || bytes.length > MAX_KEY_BYTES)
    throw new UnmaskError(
      "STORE_LIMIT",
      `rendezvous store: key "${key.slice(0, 64)}" has ${bytes.length} bytes, expected 1..${MAX_KEY_BYTES}`,
      { subject: key.slice(0, 64) },
    );
  return bytes;
}

/** Builds a frame (length prefix included) from the parts' sizes, then fills it. */
function frame(size: number, fill: (view: DataView, bytes: Uint8Array) => void): Uint8Array {
  const bytes = new Uint8Array(4 + size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, size);
  fill(view, bytes);
  return bytes;
}

export function encodeRequest(request: StoreRequest): Uint8Array {
  const key = keyBytes(request.key);
  const head = 1 + 4 + 2 + key.length;
  const fillHead = (view: DataView, bytes: Uint8Array) => {
    view.setUint8(4, request.op);
    view.setUint32(5, request.id);
    view.setUint16(9, key.length);
    bytes.set(key, 11);
  };
  const at = 4 + head;
  switch (request.op) {
    case Op.set:
      if (request.value.length > MAX_VALUE_BYTES)
        throw new UnmaskError(
          "STORE_LIMIT",
          `rendezvous store: value of ${request.key} has ${request.value.length} bytes, more than ${MAX_VALUE_BYTES}`,
          { subject: request.key },
        );
      return frame(head + 4 + request.value.length, (view, bytes) => {
        fillHead(view, bytes);
        view.setUint32(at, request.value.length);
        bytes.set(request.value, at + 4);
      });
    case Op.get:
      return frame(head + 4, (view, bytes) => {
        fillHead(view, bytes);
        view.setUint32(at, Math.min(Math.max(0, Math.floor(request.waitMs)), MAX_WAIT_MS));
      });
    case Op.add:
      return frame(head + 8, (view, bytes) => {
        fillHead(view, bytes);
        view.setBigInt64(at, request.delta);
      });
    case Op.delete:
      return frame(head, fillHead);
  }
}

export function decodeRequest(body: Uint8Array): StoreRequest {
  const c = new Cursor(body);
  const op = c.u8("op");
  const id = c.u32("request id");
  const keyLength = c.u16("key length");
  if (keyLength === 0 || keyLength > MAX_KEY_BYTES)
    throw protocolError(`key length ${keyLength} is outside 1..${MAX_KEY_BYTES}`);
  const key = text(c.bytesOf(keyLength, "key"), "key");
  let request: StoreRequest;
  if (op === Op.set) {
    const n = c.u32("value length");
    if (n > MAX_VALUE_BYTES) throw protocolError(`value length ${n} exceeds ${MAX_VALUE_BYTES}`);
    request = { op, id, key, value: c.bytesOf(n, "value") };
  } else if (op === Op.get) {
    request = { op, id, key, waitMs: Math.min(c.u32("wait"), MAX_WAIT_MS) };
  } else if (op === Op.add) {
    request = { op, id, key, delta: c.i64("delta") };
  } else if (op === Op.delete) {
    request = { op, id, key };
  } else throw protocolError(`unknown op ${op}`);
  c.end();
  return request;
}

export function encodeResponse(response: StoreResponse): Uint8Array {
  const fillHead = (view: DataView) => {
    view.setUint8(4, response.status);
    view.setUint32(5, response.id);
  };
  if (response.status === Status.ok)
    return frame(5 + response.payload.length, (view, bytes) => {
      fillHead(view);
      bytes.set(response.payload, 9);
    });
  if (response.status === Status.timeout) return frame(5, fillHead);
  const code = utf8.encode(response.code).subarray(0, 256);
  const message = utf8.encode(response.message).subarray(0, MAX_ERROR_TEXT_BYTES);
  return frame(5 + 2 + code.length + 4 + message.length, (view, bytes) => {
    fillHead(view);
    view.setUint16(9, code.length);
    bytes.set(code, 11);
    view.setUint32(11 + code.length, message.length);
    bytes.set(message, 15 + code.length);
  });
}

export function decodeResponse(body: Uint8Array): StoreResponse {
  const c = new Cursor(body);
  const status = c.u8("status");
  const id = c.u32("request id");
  if (status === Status.ok) return { status, id, payload: body.subarray(5) };
  if (status === Status.timeout) {
    c.end();
    return { status, id };
  }
  if (status !== Status.error) throw protocolError(`unknown status ${status}`);
  const code = text(c.bytesOf(c.u16("code length"), "code"), "code");
  const messageLength = c.u32("message length");
  if (messageLength > MAX_ERROR_TEXT_BYTES) throw protocolError(`error message of ${messageLength} bytes`);
  const message = text(c.bytesOf(messageLength, "message"), "message");
  c.end();
  return { status, id, code, message };
}

/**
 * Splits a byte stream into frame bodies. The length prefix is checked against `maxBodyBytes`
 * before any body is buffered, so a hostile length cannot make the reader allocate.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  constructor(private readonly maxBodyBytes: number) {}

  /** Adds received bytes; returns the complete bodies. @throws StoreProtocolError on an oversize frame */
  push(chunk: Uint8Array): Uint8Array[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const bodies: Uint8Array[] = [];
    while (this.buffered >= 4) {
      const head = this.peek(4);
      const size = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
      if (size > this.maxBodyBytes)
        throw protocolError(`frame of ${size} bytes exceeds ${this.maxBodyBytes}`);
      if (this.buffered < 4 + size) break;
      bodies.push(this.consume(4 + size).subarray(4));
    }
    return bodies;
  }

  private peek(n: number): Uint8Array {
    if (this.chunks[0].length >= n) return this.chunks[0];
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }

  private consume(n: number): Uint8Array {
    const first = this.peek(n);
    const out = first.subarray(0, n);
    const rest = first.subarray(n);
    this.chunks = rest.length > 0 ? [rest, ...this.chunks.slice(1)] : this.chunks.slice(1);
    this.buffered -= n;
    return out;
  }
}
