/**
 * A minimal key-value store over TCP for the rendezvous of worker processes (the role of
 * PyTorch's c10d TCPStore): the launching process hosts it, every worker connects to
 * MASTER_ADDR:MASTER_PORT, and they exchange the NCCL unique id and meet at barriers.
 *
 * Operations: set, get (waits until the key exists, up to a timeout), add (an integer counter,
 * stored as decimal text so get reads it), delete, and barrier (built from add + get).
 * Frames and limits are in store-protocol.ts. Every wait has a timeout; every failure is an
 * UnmaskError with a stable code: STORE_CONNECT, STORE_TIMEOUT, STORE_CLOSED, STORE_PROTOCOL,
 * STORE_LIMIT, STORE_ERROR.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { UnmaskError } from "@unmask/clip";
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  FrameReader,
  MAX_BODY_BYTES,
  MAX_WAIT_MS,
  Op,
  Status,
  type StoreRequest,
  type StoreResponse,
} from "./store-protocol.js";

/** Bounds on what one server holds, so a runaway or hostile client cannot exhaust memory. */
export const MAX_STORE_BYTES = 256 << 20;
export const MAX_STORE_KEYS = 1 << 16;
export const MAX_CLIENTS = 4096;
/** Responses are small; the client's reader refuses anything above a value plus headers. */
const MAX_RESPONSE_BYTES = MAX_BODY_BYTES;
/** Default wait of get/barrier: workers load a model before they meet, which can take minutes. */
export const DEFAULT_STORE_TIMEOUT_MS = 600_000;

const ok = (id: number, payload: Uint8Array = new Uint8Array(0)): StoreResponse => ({
  status: Status.ok,
  id,
  payload,
});

function i64Bytes(value: bigint): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigInt64(0, value);
  return bytes;
}

export interface TcpStoreServerOptions {
  /** Interface to listen on (default 127.0.0.1; "0.0.0.0" lets other hosts join). */
  host?: string;
  /** Port (default 0: the system picks one, read it from `.port`). */
  port?: number;
}

export interface TcpStoreServer {
  readonly host: string;
  readonly port: number;
  /** Closes every connection (pending waits get STORE_CLOSED on their clients) and stops listening. */
  close(): Promise<void>;
}

interface Waiter {
  socket: Socket;
  id: number;
  timer: NodeJS.Timeout;
}

/** Starts a store server. @throws UnmaskError STORE_LISTEN when the address cannot be bound */
export async function startTcpStore(options: TcpStoreServerOptions = {}): Promise<TcpStoreServer> {
  const host = options.host ?? "127.0.0.1";
  const data = new Map<string, Uint8Array>();
  let storedBytes = 0;
  const waiters = new Map<string, Set<Waiter>>();
  const sockets = new Set<Socket>();

  const send = (socket: Socket, response: StoreResponse) => {
    if (!socket.destroyed) socket.write(encodeResponse(response));
  };
  const fail = (id: number, code: string, message: string): StoreResponse => ({
    status: Status.error,
    id,
    code,
    message,
  });

  const put = (key: string, value: Uint8Array): StoreResponse | undefined => {
    const old = data.get(key);
    const grow = value.length - (old?.length ?? 0) + (old ? 0 : key.length);
    if (!old && data.size >= MAX_STORE_KEYS)
      return fail(0, "STORE_LIMIT", `store holds ${MAX_STORE_KEYS} keys`);
    if (storedBytes + grow > MAX_STORE_BYTES)
      return fail(0, "STORE_LIMIT", `store would exceed ${MAX_STORE_BYTES} bytes with ${key}`);
    storedBytes += grow;
    data.set(key, Uint8Array.from(value));
    const waiting = waiters.get(key);
    if (waiting) {
      waiters.delete(key);
      for (const w of waiting) {
        clearTimeout(w.timer);
        send(w.socket, ok(w.id, lengthPrefixed(value)));
      }
    }
    return undefined;
  };

  const handle = (socket: Socket, request: StoreRequest) => {
    const { id, key } = request;
    switch (request.op) {
      case Op.set: {
        const refused = put(key, request.value);
        send(socket, refused ? { ...refused, id } : ok(id));
        return;
      }
      case Op.get: {
        const value = data.get(key);
        if (value) return send(socket, ok(id, lengthPrefixed(value)));
        if (request.waitMs === 0) return send(socket, { status: Status.timeout, id });
        const set = waiters.get(key) ?? new Set<Waiter>();
        waiters.set(key, set);
        const waiter: Waiter = {
          socket,
          id,
          timer: setTimeout(() => {
            set.delete(waiter);
            if (set.size === 0 && waiters.get(key) === set) waiters.delete(key);
            send(socket, { status: Status.timeout, id });
          }, request.waitMs),
        };
        set.add(waiter);
        return;
      }
      case Op.add: {
        const old = data.get(key);
        const current = old ? parseCounter(old) : 0n;
        if (current === undefined)
          return send(socket, fail(id, "STORE_ERROR", `add on ${key}, which does not hold an integer`));
        const total = current + request.delta;
        const refused = put(key, new TextEncoder().encode(total.toString()));
        return send(socket, refused ? { ...refused, id } : ok(id, i64Bytes(total)));
      }
      case Op.delete: {
        const old = data.get(key);
        if (old) {
          storedBytes -= old.length + key.length;
          data.delete(key);
        }
        return send(socket, ok(id, Uint8Array.of(old ? 1 : 0)));
      }
    }
  };

  const dropWaitsOf = (socket: Socket) => {
    for (const [key, set] of waiters) {
      for (const w of set)
        if (w.socket === socket) {
          clearTimeout(w.timer);
          set.delete(w);
        }
      if (set.size === 0) waiters.delete(key);
    }
  };

  const server: Server = createServer((socket) => {
    if (sockets.size >= MAX_CLIENTS) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.setNoDelay(true);
    const reader = new FrameReader(MAX_BODY_BYTES);
    socket.on("data", (chunk: Buffer) => {
      try {
        for (const body of reader.push(chunk)) handle(socket, decodeRequest(body));
      } catch {
        // A peer that breaks the protocol loses its connection; the store and others go on.
        socket.destroy();
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      sockets.delete(socket);
      dropWaitsOf(socket);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", (cause) =>
      reject(
        new UnmaskError(
          "STORE_LISTEN",
          `rendezvous store cannot listen on ${host}:${options.port ?? 0}: ${cause.message}`,
          {
            cause,
            subject: "MASTER_PORT",
          },
        ),
      ),
    );
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : (options.port ?? 0);
  let closed: Promise<void> | undefined;
  return {
    host,
    port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const set of waiters.values()) for (const w of set) clearTimeout(w.timer);
        waiters.clear();
        // end() flushes answers already written; a client that does not hang up is cut after 1 s.
        for (const s of sockets) s.end();
        const cut = setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 1000);
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
      });
      return closed;
    },
  };
}

function lengthPrefixed(value: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + value.length);
  new DataView(out.buffer).setUint32(0, value.length);
  out.set(value, 4);
  return out;
}

function parseCounter(bytes: Uint8Array): bigint | undefined {
  const s = new TextDecoder().decode(bytes);
  return /^-?\d{1,19}$/.test(s) ? BigInt(s) : undefined;
}

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
