/**
 * The image tower's last block for the class rows alone (blockForward / blockBackward with
 * queries = 1) against the whole block on the same inputs, with the output gradient zero off the
 * class rows as the head leaves it: every value the tower uses must be equal (=== : bit for bit,
 * up to the sign of a zero).
 */
import { describe, expect, it } from "vitest";
import { Arena } from "./arena.js";
import {
  allocBlockActivations,
  allocBlockScratch,
  type BlockDims,
  type BlockGradients,
  type BlockWeights,
  blockBackward,
  blockForward,
} from "./block.js";
import { normals } from "./random-model.js";

const S = 2;
const dims: BlockDims = { batch: 3, tokens: 17, width: 32, heads: 2, mlp: 128 };
const D = dims.width;
const F = dims.mlp;
const rows = dims.batch * dims.tokens;

function filled(arena: Arena, count: number, draw: () => number, scale: number, offset = 0): Float32Array {
  const a = arena.floats(count, "test");
  for (let i = 0; i < count; i++) a[i] = offset + scale * draw();
  return a;
}

function setup() {
  const arena = new Arena(64 << 20);
  const draw = normals(11);
  const w: BlockWeights = {
    ln1Weight: filled(arena, D, draw, 0.1, 1),
    ln1Bias: filled(arena, D, draw, 0.05),
    inProjWeight: filled(arena, 3 * D * D, draw, D ** -0.5),
    inProjBias: filled(arena, 3 * D, draw, 0.02),
    outProjWeight: filled(arena, D * D, draw, D ** -0.5),
    outProjBias: filled(arena, D, draw, 0.02),
    ln2Weight: filled(arena, D, draw, 0.1, 1),
    ln2Bias: filled(arena, D, draw, 0.05),
    fcWeight: filled(arena, F * D, draw, D ** -0.5),
    fcBias: filled(arena, F, draw, 0.02),
    projWeight: filled(arena, D * F, draw, F ** -0.5),
    projBias: filled(arena, D, draw, 0.02),
  };
  const x = filled(arena, rows * D, draw, 1);
  const headGradient = filled(arena, S * dims.batch * D, draw, 1);
  const grads = (): BlockGradients => ({
    inProj: arena.floats(S * 3 * D * D, "test"),
    outProj: arena.floats(S * D * D, "test"),
    fc: arena.floats(S * F * D, "test"),
    proj: arena.floats(S * D * F, "test"),
  });
  return { arena, w, x, headGradient, grads };
}

describe("the last block for the class rows alone", () => {
  it("gives the whole block's class rows, input gradient and weight gradients", () => {
    const { arena, w, x, headGradient, grads } = setup();
    // the whole block
    const full = allocBlockActivations(arena, dims, "test");
    const y = arena.floats(rows * D, "test");
    blockForward(y, x, w, full, dims, false);
    const dx = arena.floats(S * rows * D, "test");
    for (let sb = 0; sb < S * dims.batch; sb++)
      dx.set(headGradient.subarray(sb * D, (sb + 1) * D), sb * dims.tokens * D);
    const fullGrads = grads();
    blockBackward(dx, x, w, full, fullGrads, allocBlockScratch(arena, dims, S), dims, S, true);
    // the class rows alone
    const compact = allocBlockActivations(arena, dims, "test");
    const yCls = arena.floats(dims.batch * D, "test");
    blockForward(yCls, x, w, compact, dims, false, 1);
    const dxClass = arena.floats(S * dims.batch * D, "test");
    dxClass.set(headGradient);
    const dxRows = arena.floats(S * rows * D, "test");
    const classGrads = grads();
    // scratch as an earlier block leaves it: whatever the backward reads must be written first
    const scratch = allocBlockScratch(arena, dims, S);
    for (const buffer of [scratch.dWidth, scratch.dQkv, scratch.dMlp, scratch.dProbs])
      buffer.fill(Number.NaN);
    dxRows.fill(Number.NaN);
    blockBackward(dxRows, x, w, compact, classGrads, scratch, dims, S, true, 1, dxClass);

    const differing = (a: Float32Array, b: Float32Array) => a.filter((v, i) => v !== b[i]).length;
    const classRows = new Float32Array(dims.batch * D);
    for (let b = 0; b < dims.batch; b++)
      classRows.set(y.subarray(b * dims.tokens * D, (b * dims.tokens + 1) * D), b * D);
    expect(differing(yCls, classRows)).toBe(0);
    expect(differing(dxRows, dx)).toBe(0);
    for (const name of ["inProj", "outProj", "fc", "proj"] as const) {
      const got = classGrads[name] as Float32Array;
      expect(differing(got, fullGrads[name] as Float32Array), name).toBe(0);
      expect(got.some((v) => v !== 0)).toBe(true);
    }
    // the input gradient reaches every row (through the keys and values), not the class rows alone
    expect(dxRows.subarray(D, dims.tokens * D).some((v) => v !== 0)).toBe(true);
  });
});
