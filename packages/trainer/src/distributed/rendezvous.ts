/**
 * How worker processes find each other: torchrun's environment conventions, then a meeting at
 * the TCP store (tcp-store.ts) where rank 0 publishes the 128-byte NCCL unique id.
 *
 *   MASTER_ADDR   host of the store (default 127.0.0.1)       RANK        this process, 0..WORLD_SIZE-1
 *   MASTER_PORT   port of the store (required when N > 1)    WORLD_SIZE  processes in the run (N)
 *   LOCAL_RANK    this process on its host (default RANK)    LOCAL_WORLD_SIZE  processes on this host
 *
 * With none of RANK / WORLD_SIZE set the run is a world of 1: no store, no NCCL.
 * The store is hosted by the launcher (launcher.ts, which sets UNMASK_STORE_HOSTED=1 for its
 * workers); processes started by hand or by another launcher get it from rank 0 instead.
 */
import { UnmaskError } from "@unmask/clip";
import { startTcpStore, TcpStoreClient, type TcpStoreServer } from "./tcp-store.js";

/** sizeof(ncclUniqueId): `typedef struct { char internal[128]; } ncclUniqueId;` */
export const NCCL_UNIQUE_ID_BYTES = 128;
/** Far above any single job; bounds the counters and per-rank keys a bad WORLD_SIZE would create. */
export const MAX_WORLD_SIZE = 4096;

export interface WorldInfo {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  /** 0 for a world of 1 (no store). */
  masterPort: number;
}

export type Env = Record<string, string | undefined>;

function badEnv(name: string, value: string | undefined, expected: string): UnmaskError {
  return new UnmaskError(
    "BAD_DISTRIBUTED_ENV",
    `${name} is ${value === undefined ? "not set" : `"${value}"`}; expected ${expected}`,
    { subject: name },
  );
}

function integerVar(env: Env, name: string, min: number, max: number, fallback?: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") {
    if (fallback !== undefined) return fallback;
    throw badEnv(name, raw, `an integer in ${min}..${max}`);
  }
  const value = /^\s*\d{1,10}\s*$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= min && value <= max)) throw badEnv(name, raw, `an integer in ${min}..${max}`);
  return value;
}

/**
 * Reads the torchrun variables. @throws UnmaskError BAD_DISTRIBUTED_ENV naming the variable
 */
export function parseWorldEnv(env: Env = process.env): WorldInfo {
  if (!env.WORLD_SIZE && !env.RANK)
    return { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, masterAddr: "127.0.0.1", masterPort: 0 };
  const worldSize = integerVar(env, "WORLD_SIZE", 1, MAX_WORLD_SIZE);
  const rank = integerVar(env, "RANK", 0, worldSize - 1);
  const localWorldSize = integerVar(env, "LOCAL_WORLD_SIZE", 1, worldSize, worldSize);
  const localRank = integerVar(
    env,
    "LOCAL_RANK",
    0,
    localWorldSize - 1,
    rank < localWorldSize ? rank : undefined,
  );
  const masterAddr = env.MASTER_ADDR ?? "127.0.0.1";
  if (!/^[A-Za-z0-9.:_[\]-]{1,253}$/.test(masterAddr))
    throw badEnv("MASTER_ADDR", masterAddr, "a host name or IP address");
  const masterPort =
    worldSize === 1 ? integerVar(env, "MASTER_PORT", 0, 65535, 0) : integerVar(env, "MASTER_PORT", 1, 65535);
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort };
}

/** The torchrun variables of one worker (the inverse of parseWorldEnv). */
export function worldEnv(world: WorldInfo): Record<string, string> {
  return {
    RANK: String(world.rank),
    WORLD_SIZE: String(world.worldSize),
    LOCAL_RANK: String(world.localRank),
    LOCAL_WORLD_SIZE: String(world.localWorldSize),
    MASTER_ADDR: world.masterAddr,
    MASTER_PORT: String(world.masterPort),
  };
}

export interface RendezvousOptions {
  env?: Env;
  /**
   * Makes the communicator's unique id; called on rank 0 only (nccl.ts: `nccl.getUniqueId()`;
   * tests pass a fake). Must return NCCL_UNIQUE_ID_BYTES bytes.
   */
  createUniqueId: () => Uint8Array | Promise<Uint8Array>;
  /** Whether this process hosts the store; default: rank 0 unless UNMASK_STORE_HOSTED=1. */
  hostStore?: boolean;
  /** How long to wait for the store and for the other ranks (default 10 minutes). */
  timeoutMs?: number;
}

export interface Rendezvous {
  world: WorldInfo;
  /** The communicator id every rank passes to ncclCommInitRank; null in a world of 1. */
  uniqueId: Uint8Array | null;
  /** The connection to the store (kept for barriers and checks); null in a world of 1. */
  store: TcpStoreClient | null;
  /**
   * Closes the connection and, on the rank that hosts it, the store once every other rank has
   * closed. `wait: false` (after a failure, when peers may be gone) closes at once.
   */
  close(options?: { wait?: boolean }): Promise<void>;
}

const UNIQUE_ID_KEY = "nccl/unique-id";

/**
 * Joins the world: connects to (or hosts) the store, checks no other process claimed this rank,
 * shares the NCCL unique id from rank 0, and returns once every rank has it.
 * @throws UnmaskError BAD_DISTRIBUTED_ENV, DUPLICATE_RANK, BAD_UNIQUE_ID, STORE_* (timeouts, connection)
 */
export async function rendezvous(options: RendezvousOptions): Promise<Rendezvous> {
  const env = options.env ?? process.env;
  const world = parseWorldEnv(env);
  if (world.worldSize === 1) return { world, uniqueId: null, store: null, close: async () => undefined };
  const timeoutMs = options.timeoutMs ?? 600_000;
  const hostStore = options.hostStore ?? (world.rank === 0 && env.UNMASK_STORE_HOSTED !== "1");
  let server: TcpStoreServer | undefined;
  if (hostStore)
    server = await startTcpStore({ host: listenAddress(world.masterAddr), port: world.masterPort });
  let store: TcpStoreClient | undefined;
  try {
    store = await TcpStoreClient.connect({
      host: world.masterAddr,
      port: world.masterPort,
      connectTimeoutMs: timeoutMs,
      timeoutMs,
    });
    const claims = await store.add(`rank/${world.rank}/claims`, 1);
    if (claims > 1)
      throw new UnmaskError(
        "DUPLICATE_RANK",
        `RANK ${world.rank} joined the store at ${world.masterAddr}:${world.masterPort} twice; give each process its own RANK`,
        { subject: "RANK" },
      );
    let uniqueId: Uint8Array;
    if (world.rank === 0) {
      uniqueId = checkUniqueId(await options.createUniqueId(), "createUniqueId()");
      await store.set(UNIQUE_ID_KEY, uniqueId);
    } else {
      uniqueId = checkUniqueId(await store.get(UNIQUE_ID_KEY, { timeoutMs }), `the store's ${UNIQUE_ID_KEY}`);
    }
    await store.barrier("rendezvous", world.worldSize, { timeoutMs });
    const joined = store;
    return {
      world,
      uniqueId,
      store: joined,
      async close(closeOptions: { wait?: boolean } = {}) {
        // The host keeps the store up until every other rank has said goodbye.
        try {
          if (closeOptions.wait === false) return;
          if (server)
            for (let r = 0; r < world.worldSize; r++)
              if (r !== world.rank) await joined.get(`close/${r}`, { timeoutMs });
          if (!server) await joined.set(`close/${world.rank}`, "1");
        } finally {
          joined.close();
          await server?.close();
        }
      },
    };
  } catch (error) {
    store?.close();
    await server?.close();
    throw error;
  }
}

function checkUniqueId(id: Uint8Array, source: string): Uint8Array {
  if (!(id instanceof Uint8Array) || id.length !== NCCL_UNIQUE_ID_BYTES)
    throw new UnmaskError(
      "BAD_UNIQUE_ID",
      `${source} gave ${id instanceof Uint8Array ? id.length : typeof id} bytes, expected an ncclUniqueId of ${NCCL_UNIQUE_ID_BYTES}`,
      { subject: "ncclUniqueId" },
    );
  return Uint8Array.from(id);
}

/** A loopback MASTER_ADDR listens on loopback only; any other address listens on every interface. */
export function listenAddress(masterAddr: string): string {
  return masterAddr === "localhost" || masterAddr.startsWith("127.") || masterAddr === "::1"
    ? masterAddr
    : "0.0.0.0";
}
