import { isUnmaskError } from "@unmask/clip";
import { describe, expect, it } from "vitest";
import {
  listenAddress,
  NCCL_UNIQUE_ID_BYTES,
  parseWorldEnv,
  type Rendezvous,
  rendezvous,
  worldEnv,
} from "./rendezvous.js";
import { startTcpStore } from "./tcp-store.js";

/** A fake ncclUniqueId: 128 recognisable bytes. */
const fakeId = () => Uint8Array.from({ length: NCCL_UNIQUE_ID_BYTES }, (_, i) => (i * 7 + 3) & 255);

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const probe = await startTcpStore();
  await probe.close();
  return probe.port;
}

function errorOf(fn: () => unknown): { code: string; subject?: string; message: string } {
  try {
    fn();
  } catch (error) {
    if (isUnmaskError(error)) return error;
    throw error;
  }
  throw new Error("expected an error");
}

describe("parseWorldEnv", () => {
  it("is a world of 1 without RANK and WORLD_SIZE", () => {
    expect(parseWorldEnv({})).toEqual({
      rank: 0,
      worldSize: 1,
      localRank: 0,
      localWorldSize: 1,
      masterAddr: "127.0.0.1",
      masterPort: 0,
    });
  });

  it("reads torchrun's variables and round-trips through worldEnv", () => {
    const env = {
      RANK: "5",
      WORLD_SIZE: "8",
      LOCAL_RANK: "1",
      LOCAL_WORLD_SIZE: "4",
      MASTER_ADDR: "10.0.0.2",
      MASTER_PORT: "29500",
    };
    const world = parseWorldEnv(env);
    expect(world).toEqual({
      rank: 5,
      worldSize: 8,
      localRank: 1,
      localWorldSize: 4,
      masterAddr: "10.0.0.2",
      masterPort: 29500,
    });
    expect(worldEnv(world)).toEqual(env);
  });

  it("defaults LOCAL_RANK to RANK and LOCAL_WORLD_SIZE to WORLD_SIZE on one host", () => {
    const world = parseWorldEnv({ RANK: "2", WORLD_SIZE: "4", MASTER_PORT: "1234" });
    expect([world.localRank, world.localWorldSize, world.masterAddr]).toEqual([2, 4, "127.0.0.1"]);
  });

  it("names the variable at fault (BAD_DISTRIBUTED_ENV)", () => {
    const base = { RANK: "0", WORLD_SIZE: "2", MASTER_PORT: "29500" };
    const cases: [Record<string, string>, string][] = [
      [{ ...base, WORLD_SIZE: "0" }, "WORLD_SIZE"],
      [{ ...base, WORLD_SIZE: "two" }, "WORLD_SIZE"],
      [{ ...base, WORLD_SIZE: "99999" }, "WORLD_SIZE"],
      [{ RANK: "0", MASTER_PORT: "1" }, "WORLD_SIZE"],
      [{ ...base, RANK: "2" }, "RANK"],
      [{ ...base, RANK: "-1" }, "RANK"],
      [{ ...base, RANK: "1.5" }, "RANK"],
      [{ WORLD_SIZE: "2", MASTER_PORT: "1" }, "RANK"],
      [{ ...base, MASTER_PORT: "" }, "MASTER_PORT"],
      [{ ...base, MASTER_PORT: "70000" }, "MASTER_PORT"],
      [{ ...base, MASTER_ADDR: "a b" }, "MASTER_ADDR"],
      [{ ...base, LOCAL_RANK: "2", LOCAL_WORLD_SIZE: "2" }, "LOCAL_RANK"],
      [{ ...base, LOCAL_WORLD_SIZE: "3" }, "LOCAL_WORLD_SIZE"],
      [{ ...base, RANK: "1", WORLD_SIZE: "4", LOCAL_WORLD_SIZE: "1" }, "LOCAL_RANK"],
    ];
    for (const [env, variable] of cases) {
      const error = errorOf(() => parseWorldEnv(env));
      expect([error.code, error.subject]).toEqual(["BAD_DISTRIBUTED_ENV", variable]);
      expect(error.message).toContain(variable);
    }
  });

  it("listens on loopback only for a loopback MASTER_ADDR", () => {
    expect(listenAddress("127.0.0.1")).toBe("127.0.0.1");
    expect(listenAddress("localhost")).toBe("localhost");
    expect(listenAddress("node-0.cluster")).toBe("0.0.0.0");
  });
});

const envOf = (rank: number, worldSize: number, port: number, extra: Record<string, string> = {}) => ({
  RANK: String(rank),
  WORLD_SIZE: String(worldSize),
  MASTER_ADDR: "127.0.0.1",
  MASTER_PORT: String(port),
  ...extra,
});

describe("rendezvous", () => {
  it("a world of 1 needs no store and no id", async () => {
    const r = await rendezvous({ env: {}, createUniqueId: () => fakeId() });
    expect([r.store, r.uniqueId, r.world.worldSize]).toEqual([null, null, 1]);
    await r.close();
  });

  it("rank 0 hosts the store and publishes the id; every rank gets the same 128 bytes", async () => {
    const port = await freePort();
    let calls = 0;
    const ranks = await Promise.all(
      [3, 1, 0, 2].map((rank) =>
        rendezvous({
          env: envOf(rank, 4, port),
          createUniqueId: () => {
            calls++;
            return fakeId();
          },
        }),
      ),
    );
    expect(calls).toBe(1);
    for (const r of ranks) expect(Array.from(r.uniqueId!)).toEqual(Array.from(fakeId()));
    expect(ranks.map((r) => r.world.rank)).toEqual([3, 1, 0, 2]);
    // the store stays usable for later barriers
    await Promise.all(ranks.map((r) => r.store!.barrier("epoch", 4)));
    await Promise.all(ranks.map((r) => r.close()));
  });

  it("joins a store hosted by a launcher (UNMASK_STORE_HOSTED=1)", async () => {
    const server = await startTcpStore();
    const ranks = await Promise.all(
      [0, 1].map((rank) =>
        rendezvous({
          env: envOf(rank, 2, server.port, { UNMASK_STORE_HOSTED: "1" }),
          createUniqueId: fakeId,
        }),
      ),
    );
    expect(ranks[1].uniqueId!.length).toBe(NCCL_UNIQUE_ID_BYTES);
    await Promise.all(ranks.map((r) => r.close()));
    await server.close();
  });

  it("refuses a second process with the same RANK (DUPLICATE_RANK)", async () => {
    const server = await startTcpStore();
    const env = envOf(1, 3, server.port, { UNMASK_STORE_HOSTED: "1" });
    const first = rendezvous({ env, createUniqueId: fakeId, timeoutMs: 2000 }).catch((e) => e);
    await new Promise((r) => setTimeout(r, 50));
    const second = await rendezvous({ env, createUniqueId: fakeId, timeoutMs: 2000 }).catch((e) => e);
    expect(second.code).toBe("DUPLICATE_RANK");
    expect(second.subject).toBe("RANK");
    await server.close();
    expect(isUnmaskError(await first)).toBe(true);
  });

  it("an id of the wrong size is BAD_UNIQUE_ID", async () => {
    const port = await freePort();
    const error = await rendezvous({
      env: envOf(0, 2, port),
      createUniqueId: () => new Uint8Array(16),
    }).catch((e) => e);
    expect(error.code).toBe("BAD_UNIQUE_ID");
    expect(error.message).toContain("16 bytes");
  });

  it("a rank waiting for an id that never comes gets STORE_TIMEOUT", async () => {
    const server = await startTcpStore();
    const error = await rendezvous({
      env: envOf(1, 2, server.port, { UNMASK_STORE_HOSTED: "1" }),
      createUniqueId: fakeId,
      timeoutMs: 100,
    }).catch((e) => e);
    expect([error.code, error.subject]).toEqual(["STORE_TIMEOUT", "nccl/unique-id"]);
    await server.close();
  });

  it("close() keeps the hosted store up until every rank has closed", async () => {
    const port = await freePort();
    const [r0, r1]: Rendezvous[] = await Promise.all(
      [0, 1].map((rank) => rendezvous({ env: envOf(rank, 2, port), createUniqueId: fakeId })),
    );
    const closing0 = r0.close();
    await new Promise((r) => setTimeout(r, 50));
    await r1.store!.set("still", "up"); // rank 0 is waiting in close(): the store still answers
    await Promise.all([closing0, r1.close()]);
  });
});
