import { spawn } from "node:child_process";
import { createConnection } from "node:net";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { isUnmaskError } from "@unmask/clip";
import { afterEach, describe, expect, it } from "vitest";
import { bundleChild } from "../../test/bundle-child.js";
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  FrameReader,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  Op,
  Status,
} from "./store-protocol.js";
import { startTcpStore, TcpStoreClient, type TcpStoreServer } from "./tcp-store.js";

const here = dirname(fileURLToPath(import.meta.url));
const servers: TcpStoreServer[] = [];
const clients: TcpStoreClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.close();
});

async function store(): Promise<TcpStoreServer> {
  const s = await startTcpStore();
  servers.push(s);
  return s;
}

async function client(s: TcpStoreServer, timeoutMs?: number): Promise<TcpStoreClient> {
  const c = await TcpStoreClient.connect({ host: s.host, port: s.port, timeoutMs });
  clients.push(c);
  return c;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isUnmaskError(error)) return error.code;
    throw error;
  }
  return "no error";
}

describe("tcp store, one process", () => {
  it("sets, gets, adds and deletes", async () => {
    const s = await store();
    const c = await client(s);
    await c.set("a", Uint8Array.of(1, 2, 3));
    expect(Array.from(await c.get("a"))).toEqual([1, 2, 3]);
    await c.set("a", "replaced");
    expect(await c.getText("a")).toBe("replaced");
    expect(await c.add("n", 5)).toBe(5);
    expect(await c.add("n", -7)).toBe(-2);
    expect(await c.getText("n")).toBe("-2");
    expect(await c.delete("n")).toBe(true);
    expect(await c.delete("n")).toBe(false);
    await c.set("empty", new Uint8Array(0));
    expect((await c.get("empty")).length).toBe(0);
  });

  it("get waits for another client's set; a missing key times out with STORE_TIMEOUT", async () => {
    const s = await store();
    const [a, b] = [await client(s), await client(s)];
    const waiting = a.getText("late");
    await b.set("late", "here");
    expect(await waiting).toBe("here");
    expect(await codeOf(a.get("never", { timeoutMs: 50 }))).toBe("STORE_TIMEOUT");
    // the connection still works after a timeout
    expect(await a.getText("late")).toBe("here");
  });

  it("counters are atomic across clients, and barriers release everyone together, repeatedly", async () => {
    const s = await store();
    const cs = await Promise.all(Array.from({ length: 6 }, () => client(s)));
    const totals = await Promise.all(cs.map((c) => c.add("counter", 1)));
    expect([...totals].sort()).toEqual([1, 2, 3, 4, 5, 6]);
    for (let round = 0; round < 3; round++) {
      const order: number[] = [];
      await Promise.all(
        cs.map(async (c, i) => {
          await new Promise((r) => setTimeout(r, i * 3));
          await c.add(`before/${round}`, 1);
          await c.barrier("epoch", cs.length);
          order.push(Number(await c.getText(`before/${round}`)));
        }),
      );
      // nobody left the barrier before all six had arrived
      expect(order).toEqual(new Array(6).fill(6));
    }
  });

  it("a barrier short of one process times out", async () => {
    const s = await store();
    const c = await client(s);
    expect(await codeOf(c.barrier("two", 2, { timeoutMs: 50 }))).toBe("STORE_TIMEOUT");
  });

  it("pending requests fail with STORE_CLOSED when the server goes away", async () => {
    const s = await store();
    const c = await client(s);
    const waiting = codeOf(c.get("x", { timeoutMs: 60_000 }));
    await s.close();
    expect(await waiting).toBe("STORE_CLOSED");
    expect(await codeOf(c.set("y", "1"))).toBe("STORE_CLOSED");
  });

  it("connect gives STORE_CONNECT naming the address when nothing listens", async () => {
    const s = await store();
    const port = s.port;
    await s.close();
    const error = await TcpStoreClient.connect({ host: "127.0.0.1", port, connectTimeoutMs: 100 }).catch(
      (e) => e,
    );
    expect(error.code).toBe("STORE_CONNECT");
    expect(error.message).toContain(`127.0.0.1:${port}`);
  });

  it("connect waits for a server that starts late", async () => {
    const probe = await store();
    const port = probe.port;
    await probe.close();
    const connecting = TcpStoreClient.connect({ host: "127.0.0.1", port, connectTimeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 100));
    servers.push(await startTcpStore({ port }));
    const c = await connecting;
    clients.push(c);
    await c.set("k", "v");
    expect(await c.getText("k")).toBe("v");
  });

  it("refuses keys and values over their caps on the client (STORE_LIMIT)", async () => {
    const s = await store();
    const c = await client(s);
    await c.set("k".repeat(MAX_KEY_BYTES), "at the cap");
    expect(await codeOf(c.set("k".repeat(MAX_KEY_BYTES + 1), "v"))).toBe("STORE_LIMIT");
    expect(await codeOf(c.set("", "v"))).toBe("STORE_LIMIT");
    expect(await codeOf(c.set("big", new Uint8Array(MAX_VALUE_BYTES + 1)))).toBe("STORE_LIMIT");
    await c.set("big", new Uint8Array(1 << 20).fill(7)); // a large value crosses many TCP chunks
    const back = await c.get("big");
    expect(back.length).toBe(1 << 20);
    expect(back.every((v) => v === 7)).toBe(true);
    expect(await codeOf(c.add("big", 1))).toBe("STORE_ERROR");
  });
});

describe("tcp store, child processes", () => {
  it("four worker processes exchange values through the store and meet at a barrier", async () => {
    const s = await store();
    const script = await bundleChild(
      `import { TcpStoreClient } from "./tcp-store.ts";
       const [port, rank, world] = process.argv.slice(2).map(Number);
       const c = await TcpStoreClient.connect({ host: "127.0.0.1", port });
       await c.set("value/" + rank, String(rank * rank));
       await c.barrier("all", world);
       let sum = 0;
       for (let r = 0; r < world; r++) sum += Number(await c.getText("value/" + r));
       await c.add("sum", sum);
       c.close();`,
      here,
    );
    const world = 4;
    const codes = await Promise.all(
      Array.from(
        { length: world },
        (_, rank) =>
          new Promise<number | null>((resolve) => {
            const child = spawn(process.execPath, [script, String(s.port), String(rank), String(world)], {
              stdio: "inherit",
            });
            child.on("exit", resolve);
          }),
      ),
    );
    expect(codes).toEqual([0, 0, 0, 0]);
    const c = await client(s);
    // each of 4 ranks saw 0 + 1 + 4 + 9 = 14
    expect(await c.getText("sum")).toBe(String(4 * 14));
  });
});

describe("store protocol, hostile input", () => {
  const body = (frame: Uint8Array) => frame.subarray(4);

  it("round-trips every request and response kind", () => {
    const requests = [
      { op: Op.set, id: 7, key: "k", value: Uint8Array.of(9, 8) },
      { op: Op.get, id: 8, key: "k", waitMs: 1234 },
      { op: Op.add, id: 9, key: "k", delta: -5n },
      { op: Op.delete, id: 10, key: "ключ" },
    ] as const;
    for (const r of requests) expect(decodeRequest(body(encodeRequest(r)))).toEqual(r);
    const error = { status: Status.error, id: 3, code: "STORE_LIMIT", message: "too big" } as const;
    expect(decodeResponse(body(encodeResponse(error)))).toEqual(error);
    expect(decodeResponse(body(encodeResponse({ status: Status.timeout, id: 4 })))).toEqual({
      status: Status.timeout,
      id: 4,
    });
  });

  it("every truncation of a valid request is STORE_PROTOCOL, and so are trailing bytes", () => {
    const full = body(encodeRequest({ op: Op.set, id: 1, key: "key", value: Uint8Array.of(1, 2, 3, 4) }));
    for (let n = 0; n < full.length; n++)
      expect(() => decodeRequest(full.subarray(0, n))).toThrow(/STORE|needs/);
    const withTrailing = Uint8Array.from([...full, 0]);
    expect(() => decodeRequest(withTrailing)).toThrow(/1 trailing bytes/);
  });

  it("rejects unknown ops, zero and oversize key lengths, oversize value lengths and bad UTF-8", () => {
    const head = (op: number, keyLength: number, key: number[]) => [
      op,
      0,
      0,
      0,
      1,
      keyLength >> 8,
      keyLength & 255,
      ...key,
    ];
    const cases = [
      Uint8Array.from(head(99, 1, [65])),
      Uint8Array.from(head(Op.delete, 0, [])),
      Uint8Array.from([...head(Op.delete, MAX_KEY_BYTES + 1, []), ...new Array(MAX_KEY_BYTES + 1).fill(65)]),
      Uint8Array.from([...head(Op.set, 1, [65]), 0xff, 0xff, 0xff, 0xff]),
      Uint8Array.from(head(Op.delete, 2, [0xc3, 0x28])),
    ];
    for (const c of cases) {
      let code = "";
      try {
        decodeRequest(c);
      } catch (error) {
        code = (error as { code: string }).code;
      }
      expect(code).toBe("STORE_PROTOCOL");
    }
  });

  it("the frame reader refuses an oversize length before buffering, and reassembles 1-byte chunks", () => {
    const reader = new FrameReader(16);
    expect(() => reader.push(Uint8Array.of(0, 0, 0, 17))).toThrow(/exceeds 16/);
    const frame = encodeRequest({ op: Op.get, id: 5, key: "abc", waitMs: 0 });
    const bytewise = new FrameReader(1 << 10);
    const bodies: Uint8Array[] = [];
    for (let i = 0; i < frame.length; i++) bodies.push(...bytewise.push(frame.subarray(i, i + 1)));
    expect(bodies.map((b) => decodeRequest(b))).toEqual([{ op: Op.get, id: 5, key: "abc", waitMs: 0 }]);
  });

  it("a client that sends garbage loses its connection; the store keeps serving others", async () => {
    const s = await store();
    const good = await client(s);
    await good.set("k", "v");
    const closed = await new Promise<boolean>((resolve) => {
      const raw = createConnection({ host: s.host, port: s.port }, () => {
        raw.write(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3)); // claims a 4 GiB frame
      });
      raw.on("close", () => resolve(true));
      raw.on("error", () => undefined);
    });
    expect(closed).toBe(true);
    expect(await good.getText("k")).toBe("v");
  });
});
