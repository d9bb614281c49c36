import { describe, expect, it } from "vitest";
import { SeededRandom } from "./random.js";

describe("SeededRandom (xoshiro128**)", () => {
  it("matches the reference generator from state {1, 2, 3, 4}", () => {
    const rng = SeededRandom.fromState([1, 2, 3, 4]);
    expect([rng.nextUint32(), rng.nextUint32(), rng.nextUint32(), rng.nextUint32()]).toEqual([
      11520, 0, 5927040, 70819200,
    ]);
  });

  it("is deterministic per (seed, stream) and differs across them", () => {
    const draw = (seed: number, stream: string) => {
      const rng = new SeededRandom(seed, stream);
      return Array.from({ length: 8 }, () => rng.nextUint32());
    };
    expect(draw(1, "train")).toEqual(draw(1, "train"));
    expect(draw(1, "train")).not.toEqual(draw(2, "train"));
    expect(draw(1, "train")).not.toEqual(draw(1, "few-shot"));
    expect(draw(2 ** 40, "")).not.toEqual(draw(0, ""));
  });

  it("continues exactly from a saved state", () => {
    const a = new SeededRandom(7, "x");
    for (let i = 0; i < 5; i++) a.nextFloat();
    const b = SeededRandom.fromState(JSON.parse(JSON.stringify(a.getState())));
    expect(Array.from({ length: 10 }, () => b.nextFloat())).toEqual(
      Array.from({ length: 10 }, () => a.nextFloat()),
    );
  });

  it("draws floats in [0, 1) and unbiased integers in range", () => {
    const rng = new SeededRandom(3);
    const counts = new Array(5).fill(0);
    let inRange = true;
    for (let i = 0; i < 50_000; i++) {
      const f = rng.nextFloat();
      inRange &&= f >= 0 && f < 1;
      counts[rng.nextInt(5)]++;
    }
    expect(inRange).toBe(true);
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    expect(rng.nextInt(1)).toBe(0);
  });

  it("makes permutations", () => {
    const perm = Array.from(new SeededRandom(1).permutation(100));
    expect([...perm].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(perm).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it("refuses bad seeds and states", () => {
    expect(() => new SeededRandom(1.5)).toThrow(/seed/);
    expect(() => SeededRandom.fromState([0, 0, 0, 0])).toThrow(/random state/);
    expect(() => SeededRandom.fromState([1, 2, 3])).toThrow(/random state/);
    expect(() => SeededRandom.fromState([1, 2, 3, 2 ** 32])).toThrow(/random state/);
    expect(() => new SeededRandom(1).nextInt(0)).toThrow(/bound/);
  });
});
