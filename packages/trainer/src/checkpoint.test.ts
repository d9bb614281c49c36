import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeSafetensors } from "@unmask/clip";
import { describe, expect, it } from "vitest";
import { type Checkpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.js";
import { EpochSampler } from "./data/sampler.js";

const shapes = new Map<string, number[]>([
  ["visual.conv1.weight", [4, 3, 2, 2]],
  ["visual.transformer.resblocks.0.attn.in_proj_weight", [6, 2]],
]);

function example(): Checkpoint {
  const fill = (seed: number) =>
    new Map(
      [...shapes].map(([n, s]) => [
        n,
        Float32Array.from({ length: s.reduce((a, b) => a * b) }, (_, i) => Math.sin(seed + i)),
      ]),
    );
  const sampler = new EpochSampler({
    sizes: [
      { width: 5, height: 5 },
      { width: 7, height: 3 },
    ],
    batchSize: 1,
    seed: 1,
  });
  sampler.startEpoch(0);
  sampler.next();
  return {
    engine: { scores: fill(1), adamM: fill(2), adamV: fill(3) },
    state: {
      optionsHash: "ab".repeat(32),
      globalStep: 3,
      sampler: sampler.getState(),
      history: [{ epoch: 0, lr: 8e-5, loss: 1.25, lossKl: 0.1, lossReg: 0.01, accuracy: 0.5, images: 2 }],
      totals: { steps: 1, images: 1, lossCe: 0.5, lossKl: 0.25, lossReg: 0.125, correct: 1 },
      trainSeconds: 1.5,
    },
  };
}

describe("checkpoint", () => {
  it("round-trips scores, Adam moments and state exactly, atomically", async () => {
    const dir = mkdtempSync(join(tmpdir(), "unmask-ckpt-"));
    const path = join(dir, "run.ckpt");
    const cp = example();
    await saveCheckpoint(path, cp, shapes);
    expect(readdirSync(dir)).toEqual(["run.ckpt"]);
    const back = await loadCheckpoint(path, shapes);
    expect(back).toEqual(cp);
    await saveCheckpoint(path, { ...cp, state: { ...cp.state, globalStep: 4 } }, shapes);
    expect((await loadCheckpoint(path, shapes))?.state.globalStep).toBe(4);
  });

  it("returns null when there is no checkpoint", async () => {
    expect(await loadCheckpoint(join(tmpdir(), "no-such-unmask.ckpt"), shapes)).toBeNull();
  });

  it("refuses a checkpoint of other tensors, another format or garbage", async () => {
    const dir = mkdtempSync(join(tmpdir(), "unmask-ckpt-"));
    const path = join(dir, "run.ckpt");
    await saveCheckpoint(path, example(), shapes);
    const other = new Map([...shapes].map(([n, s]) => [n, s.map((d) => d + 1)]));
    await expect(loadCheckpoint(path, other)).rejects.toMatchObject({ code: "BAD_CHECKPOINT" });
    const fewer = new Map([...shapes].slice(0, 1));
    await expect(loadCheckpoint(path, fewer)).rejects.toThrow(/holds 6 tensors, expected 3/);
    const foreign = join(dir, "foreign.ckpt");
    await writeSafetensors(foreign, [], { metadata: { format: "something" } });
    await expect(loadCheckpoint(foreign, shapes)).rejects.toThrow(/not an unmask checkpoint/);
    const badState = join(dir, "bad-state.ckpt");
    await writeSafetensors(badState, [], {
      metadata: { format: "unmask-checkpoint", format_version: "1", state: "{" },
    });
    await expect(loadCheckpoint(badState, shapes)).rejects.toThrow(/not JSON/);
    const junk = join(dir, "junk.ckpt");
    writeFileSync(junk, "definitely not safetensors");
    await expect(loadCheckpoint(junk, shapes)).rejects.toMatchObject({
      code: expect.stringMatching(/SAFETENSORS/),
    });
  });
});
