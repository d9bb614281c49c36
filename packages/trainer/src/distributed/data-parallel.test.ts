import { describe, expect, it } from "vitest";
import type { TrainBatch } from "../engine.js";
import { joinDataParallel, tensorsDigest } from "./data-parallel.js";
import { NCCL_UNIQUE_ID_BYTES, rendezvous } from "./rendezvous.js";
import { startTcpStore } from "./tcp-store.js";

const fakeId = () => new Uint8Array(NCCL_UNIQUE_ID_BYTES).fill(9);
const batch: TrainBatch = {
  labels: Int32Array.of(0, 1, 2, 0, 1, 2, 0),
  pixels: new Float32Array(7 * 2).map((_, i) => i),
};

async function world(size: number) {
  const server = await startTcpStore();
  const ranks = await Promise.all(
    Array.from({ length: size }, (_, rank) =>
      rendezvous({
        env: {
          RANK: String(rank),
          WORLD_SIZE: String(size),
          MASTER_PORT: String(server.port),
          UNMASK_STORE_HOSTED: "1",
        },
        createUniqueId: fakeId,
      }),
    ),
  );
  return { server, ranks };
}

describe("joinDataParallel", () => {
  it("a world of 1 is the single-GPU path: the whole batch, no engine option, no NCCL", async () => {
    const dp = await joinDataParallel({
      rendezvous: await rendezvous({ env: {}, createUniqueId: fakeId }),
      globalBatch: 7,
    });
    expect(dp.shard(batch)).toBe(batch);
    expect(dp.engineOptions).toBeUndefined();
    expect(dp.range).toEqual({ rank: 0, start: 0, end: 7, size: 7 });
    expect(await dp.gather("totals", { loss: 1 })).toEqual([{ loss: 1 }]);
    dp.assertEngineJoined("cpu"); // nothing to join in a world of 1
    await dp.checkReplicas("epoch-0", new Map([["a", Float32Array.of(1)]]));
    dp.dispose();
  });

  it("several ranks without NCCL is NCCL_UNAVAILABLE", async () => {
    const { server, ranks } = await world(2);
    const error = await joinDataParallel({ rendezvous: ranks[0], globalBatch: 8 }).catch((e) => e);
    expect(error.code).toBe("NCCL_UNAVAILABLE");
    await Promise.all(ranks.map((r) => r.close({ wait: false })));
    await server.close();
  });

  it("shards, gathers on rank 0, and checks replicas through the store", async () => {
    const { server, ranks } = await world(3);
    const nccl = {} as never; // createReducer is not called without an engine
    const dps = await Promise.all(
      ranks.map((r) => joinDataParallel({ rendezvous: r, globalBatch: 7, nccl })),
    );
    expect(dps.map((d) => Array.from(d.shard(batch).labels))).toEqual([
      [0, 1],
      [2, 0],
      [1, 2, 0],
    ]);
    expect(dps.map((d) => d.engineOptions?.worldSize)).toEqual([3, 3, 3]);
    // an engine that ignores the option is caught before it trains the ranks apart
    expect(() => dps[1].assertEngineJoined("cpu")).toThrow(
      expect.objectContaining({ code: "ENGINE_NOT_DISTRIBUTED", subject: "gpus" }),
    );
    const gathered = await Promise.all(
      dps.map((d) => d.gather("epoch-0", { rank: d.world.rank, images: d.range.size })),
    );
    expect(gathered).toEqual([
      [
        { rank: 0, images: 2 },
        { rank: 1, images: 2 },
        { rank: 2, images: 3 },
      ],
      null,
      null,
    ]);

    const same = new Map([["t", Float32Array.of(1, 2, 3)]]);
    await Promise.all(dps.map((d) => d.checkReplicas("epoch-0", same)));
    const errors = await Promise.all(
      dps.map((d) =>
        d
          .checkReplicas(
            "epoch-1",
            new Map([["t", Float32Array.of(1, 2, d.world.rank === 2 ? 3.0000002 : 3)]]),
          )
          .catch((e) => e),
      ),
    );
    for (const e of errors) expect([e.code, e.subject]).toEqual(["REPLICA_DIVERGED", "rank 2"]);
    await Promise.all(ranks.map((r) => r.close()));
    await server.close();
  });

  it("digests depend on names and every bit", () => {
    const a = tensorsDigest(
      new Map([
        ["x", Float32Array.of(1, 2)],
        ["y", Float32Array.of(3)],
      ]),
    );
    expect(
      tensorsDigest(
        new Map([
          ["y", Float32Array.of(3)],
          ["x", Float32Array.of(1, 2)],
        ]),
      ),
    ).toBe(a);
    expect(
      tensorsDigest(
        new Map([
          ["x", Float32Array.of(1, 2)],
          ["z", Float32Array.of(3)],
        ]),
      ),
    ).not.toBe(a);
    expect(
      tensorsDigest(
        new Map([
          ["x", Float32Array.of(1, 2)],
          ["y", Float32Array.of(-3)],
        ]),
      ),
    ).not.toBe(a);
  });
});
