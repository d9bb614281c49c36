/**
 * The client side of the rendezvous store (tcp-store.ts hosts it): one TCP connection, requests
 * numbered so they may overlap (a get waiting for a key does not hold up a set), a deadline on
 * every request, and typed errors: STORE_CONNECT, STORE_TIMEOUT, STORE_CLOSED, STORE_PROTOCOL,
 * STORE_LIMIT, STORE_ERROR.
 */
import { createConnection, type Socket } from "node:net";
import { UnmaskError } from "@unmask/clip";
import {
  decodeResponse,
  encodeRequest,
  FrameReader,
  MAX_BODY_BYTES,
  MAX_WAIT_MS,
  Op,
  Status,
  type StoreRequest,
  type StoreResponse,
} from "./store-protocol.js";

/** Default wait of get/barrier: workers load a model before they meet, which can take minutes. */
export const DEFAULT_STORE_TIMEOUT_MS = 600_000;
/** Responses are small; the client's reader refuses anything above a value plus headers. */
const MAX_RESPONSE_BYTES = MAX_BODY_BYTES;

export interface TcpStoreClientOptions {
  host: string;
  port: number;
  /** How long to keep trying to connect (the server may still be starting); default 60 s. */
  connectTimeoutMs?: number;
  /** Default wait of get and barrier (default DEFAULT_STORE_TIMEOUT_MS). */
  timeoutMs?: number;
}

/** A request before the client numbers it (Omit distributed over the union). */
type RequestWithoutId = StoreRequest extends infer R ? (R extends unknown ? Omit<R, "id"> : never) : never;

interface Pending {
  resolve: (response: StoreResponse) => void;
  reject: (error: Error) => void;
  key: string;
}

/** A connection to a store. Requests may overlap; responses are matched by id. */
export class TcpStoreClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly barrierRounds = new Map<string, number>();
  private closedError: UnmaskError | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly host: string,
    readonly port: number,
    private readonly timeoutMs: number,
  ) {
    const reader = new FrameReader(MAX_RESPONSE_BYTES);
    socket.on("data", (chunk: Buffer) => {
      try {
        for (const body of reader.push(chunk)) {
          const response = decodeResponse(body);
          const p = this.pending.get(response.id);
          if (!p) continue; // its client-side timer already gave up on it
          this.pending.delete(response.id);
          p.resolve(response);
        }
      } catch (error) {
        this.shutdown(error as UnmaskError);
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () =>
      this.shutdown(
        new UnmaskError("STORE_CLOSED", `rendezvous store at ${host}:${port} closed the connection`, {
          subject: `${host}:${port}`,
        }),
      ),
    );
  }

  /**
   * Connects, retrying while the server is not up yet.
   * @throws UnmaskError STORE_CONNECT naming the address when the deadline passes
   */
  static async connect(options: TcpStoreClientOptions): Promise<TcpStoreClient> {
    const { host, port } = options;
    const deadline = Date.now() + (options.connectTimeoutMs ?? 60_000);
    let delayMs = 20;
    let lastError = "";
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = createConnection({ host, port });
          s.once("connect", () => resolve(s));
          s.once("error", reject);
          s.setTimeout(Math.max(1, deadline - Date.now()), () => s.destroy(new Error("connect timed out")));
        });
        socket.setTimeout(0);
        socket.removeAllListeners("error");
        socket.setNoDelay(true);
        return new TcpStoreClient(socket, host, port, options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS);
      } catch (error) {
        lastError = (error as Error).message;
      }
      if (Date.now() + delayMs > deadline)
        throw new UnmaskError(
          "STORE_CONNECT",
          `cannot reach the rendezvous store at ${host}:${port} (${lastError}); check MASTER_ADDR and MASTER_PORT`,
          { subject: "MASTER_ADDR" },
        );
      await new Promise((r) => setTimeout(r, delayMs));
      delayMs = Math.min(1000, delayMs * 2);
    }
  }

  private request(request: RequestWithoutId, backstopMs: number): Promise<StoreResponse> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    const frame = encodeRequest({ ...request, id } as StoreRequest);
    return new Promise<StoreResponse>((resolve, reject) => {
      // The server answers a wait itself; this timer only covers a server that went silent.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(this.timeout(request.key, backstopMs));
      }, backstopMs);
      this.pending.set(id, {
        key: request.key,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(frame);
    });
  }

  private timeout(key: string, ms: number): UnmaskError {
    return new UnmaskError(
      "STORE_TIMEOUT",
      `rendezvous store: waited ${ms} ms for ${key} at ${this.host}:${this.port}`,
      {
        subject: key,
      },
    );
  }

  private okPayload(response: StoreResponse, key: string, ms: number): Uint8Array {
    if (response.status === Status.ok) return response.payload;
    if (response.status === Status.timeout) throw this.timeout(key, ms);
    throw new UnmaskError(
      response.code === "STORE_LIMIT" ? "STORE_LIMIT" : "STORE_ERROR",
      `rendezvous store: ${response.message}`,
      {
        subject: key,
      },
    );
  }

  async set(key: string, value: Uint8Array | string): Promise<void> {
    const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
    const r = await this.request({ op: Op.set, key, value: bytes }, this.timeoutMs);
    this.okPayload(r, key, this.timeoutMs);
  }

  /** The value of `key`, waiting up to `timeoutMs` for another process to set it. */
  async get(key: string, options: { timeoutMs?: number } = {}): Promise<Uint8Array> {
    const ms = Math.min(options.timeoutMs ?? this.timeoutMs, MAX_WAIT_MS);
    const r = await this.request({ op: Op.get, key, waitMs: ms }, ms + 10_000);
    const payload = this.okPayload(r, key, ms);
    const n = payload.length >= 4 ? new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0) : -1;
    if (n !== payload.length - 4)
      throw new UnmaskError("STORE_PROTOCOL", `rendezvous store: value of ${key} has a bad length`, {
        subject: key,
      });
    return payload.slice(4);
  }

  async getText(key: string, options: { timeoutMs?: number } = {}): Promise<string> {
    return new TextDecoder().decode(await this.get(key, options));
  }

  /** Adds `delta` to the integer counter `key` (0 when absent) and returns the new total. */
  async add(key: string, delta: number): Promise<number> {
    const r = await this.request({ op: Op.add, key, delta: BigInt(delta) }, this.timeoutMs);
    const payload = this.okPayload(r, key, this.timeoutMs);
    if (payload.length !== 8)
      throw new UnmaskError(
        "STORE_PROTOCOL",
        `rendezvous store: add on ${key} answered ${payload.length} bytes`,
        {
          subject: key,
        },
      );
    return Number(new DataView(payload.buffer, payload.byteOffset, 8).getBigInt64(0));
  }

  /** Removes `key`; true when it existed. */
  async delete(key: string): Promise<boolean> {
    const r = await this.request({ op: Op.delete, key }, this.timeoutMs);
    return this.okPayload(r, key, this.timeoutMs)[0] === 1;
  }

  /**
   * Returns once `worldSize` processes have entered barrier `name`. Every process calls the same
   * barriers in the same order (round numbers keep repeated barriers of one name apart).
   */
  async barrier(name: string, worldSize: number, options: { timeoutMs?: number } = {}): Promise<void> {
    const round = this.barrierRounds.get(name) ?? 0;
    this.barrierRounds.set(name, round + 1);
    const key = `barrier/${name}/${round}`;
    const arrived = await this.add(`${key}/count`, 1);
    if (arrived === worldSize) await this.set(`${key}/done`, "1");
    await this.get(`${key}/done`, options);
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }

  private shutdown(error: UnmaskError): void {
    this.closedError ??= error;
    for (const p of this.pending.values()) p.reject(this.closedError);
    this.pending.clear();
    if (!this.socket.destroyed) this.socket.destroy();
  }
}
