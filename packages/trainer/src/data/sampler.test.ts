import { describe, expect, it } from "vitest";
import { EpochSampler, stepsPerEpoch } from "./sampler.js";

const sizes = (n: number) => Array.from({ length: n }, (_, i) => ({ width: 20 + i, height: 30 }));

function drain(sampler: EpochSampler, epochs: number) {
  const out = [];
  for (let e = 0; e < epochs; e++) {
    sampler.startEpoch(e);
    while (sampler.hasNext) out.push(sampler.next());
  }
  return out;
}

describe("EpochSampler", () => {
  it("drops the last partial batch only when a full batch exists", () => {
    expect(stepsPerEpoch(160, 32)).toBe(5);
    expect(stepsPerEpoch(47, 32)).toBe(1);
    expect(stepsPerEpoch(70, 32)).toBe(2);
    expect(stepsPerEpoch(10, 32)).toBe(1);
    const small = new EpochSampler({ sizes: sizes(10), batchSize: 32, seed: 1 });
    small.startEpoch(0);
    expect(small.next().crops.indices.length).toBe(10);
    expect(small.hasNext).toBe(false);
  });

  it("shuffles without replacement each epoch, seeded", () => {
    const a = drain(new EpochSampler({ sizes: sizes(70), batchSize: 32, seed: 4 }), 3);
    const b = drain(new EpochSampler({ sizes: sizes(70), batchSize: 32, seed: 4 }), 3);
    expect(a).toEqual(b);
    expect(a.length).toBe(6);
    const epoch0 = [...a[0].crops.indices, ...a[1].crops.indices];
    expect(new Set(epoch0).size).toBe(64);
    expect(a[0].crops.indices).not.toEqual(a[2].crops.indices);
    const c = drain(new EpochSampler({ sizes: sizes(70), batchSize: 32, seed: 5 }), 1);
    expect(c[0].crops.indices).not.toEqual(a[0].crops.indices);
  });

  it("draws normalised boxes inside [0,1] and both flips", () => {
    const batches = drain(new EpochSampler({ sizes: sizes(64), batchSize: 32, seed: 2 }), 2);
    let flips = 0;
    for (const { crops } of batches) {
      for (let i = 0; i < crops.indices.length; i++) {
        const [x, y, w, h] = crops.boxes.subarray(i * 4, i * 4 + 4);
        expect(x >= 0 && y >= 0 && w > 0 && h > 0).toBe(true);
        expect(x + w).toBeLessThanOrEqual(1 + 1e-6);
        expect(y + h).toBeLessThanOrEqual(1 + 1e-6);
        flips += crops.flips[i];
      }
    }
    expect(flips).toBeGreaterThan(40);
    expect(flips).toBeLessThan(88);
  });

  it("resumes mid-epoch from a JSON state to the identical stream", () => {
    const whole = drain(new EpochSampler({ sizes: sizes(100), batchSize: 16, seed: 9 }), 3);
    const first = new EpochSampler({ sizes: sizes(100), batchSize: 16, seed: 9 });
    first.startEpoch(0);
    const seen = [];
    while (first.hasNext) seen.push(first.next());
    first.startEpoch(1);
    seen.push(first.next(), first.next());
    const state = JSON.parse(JSON.stringify(first.getState()));
    const second = new EpochSampler({ sizes: sizes(100), batchSize: 16, seed: 9 });
    second.setState(state);
    while (second.hasNext) seen.push(second.next());
    second.startEpoch(2);
    while (second.hasNext) seen.push(second.next());
    expect(seen).toEqual(whole);
  });

  it("refuses out-of-order epochs and foreign states", () => {
    const s = new EpochSampler({ sizes: sizes(10), batchSize: 4, seed: 1 });
    expect(() => s.startEpoch(1)).toThrow(/epoch 1/);
    s.startEpoch(0);
    expect(() => s.startEpoch(1)).toThrow(/epoch 1/);
    const state = s.getState();
    const other = new EpochSampler({ sizes: sizes(11), batchSize: 4, seed: 1 });
    expect(() => other.setState(state)).toThrow(/sampler state/);
  });
});
