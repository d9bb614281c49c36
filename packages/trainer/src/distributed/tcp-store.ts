/**
 * A minimal key-value store over TCP for the rendezvous of worker processes (the role of
 * PyTorch's c10d TCPStore): the launching process hosts it, every worker connects to
 * MASTER_ADDR:MASTER_PORT, and they exchange the NCCL unique id and meet at barriers.
 *
 * Operations: set, get (waits until the key exists, up to a timeout), add (an integer counter,
 * stored as decimal text so get reads it), delete, and barrier (built from add + get).
 * Frames and limits are in store-protocol.ts, the client in tcp-store-client.ts (re-exported
 * here). The server never throws on a peer's input: a connection that breaks the protocol is
 * closed; full stores answer STORE_LIMIT; waits end with a timeout answer.
 */
import { createServer, type Server, type Socket } from "node:net";
import { UnmaskError } from "@unmask/clip";
import {
  decodeRequest,
  encodeResponse,
  FrameReader,
  MAX_BODY_BYTES,
  Op,
  Status,
  type StoreRequest,
  type StoreResponse,
} from "./store-protocol.js";

export { DEFAULT_STORE_TIMEOUT_MS, TcpStoreClient, type TcpStoreClientOptions } from "./tcp-store-client.js";

/** Bounds on what one server holds, so a runaway or hostile client cannot exhaust memory. */
export const MAX_STORE_BYTES = 256 << 20;
export const MAX_STORE_KEYS = 1 << 16;
export const MAX_CLIENTS = 4096;

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
