import { describe, expect, it } from "vitest";
import { Arena } from "./arena.js";
import { gemm, gemmReference } from "./gemm.js";

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

describe("gemm (wasm SIMD kernels)", () => {
  const arena = new Arena();
  const random = seeded(3);
  const cases: [boolean, boolean, number, number, number][] = [
    [false, true, 37, 29, 300],
    [false, false, 130, 1030, 70],
    [true, false, 23, 19, 513],
    [true, true, 5, 8, 1],
    [false, false, 1, 1, 3],
    [false, true, 250, 17, 9],
  ];
  for (const [transA, transB, m, n, k] of cases) {
    it(`matches the float64 loop for ${transA ? "T" : "N"}${transB ? "T" : "N"} ${m}x${n}x${k}`, () => {
      const lda = (transA ? m : k) + 3;
      const ldb = (transB ? k : n) + 1;
      const ldc = n + 2;
      const a = arena.floats((transA ? k : m) * lda);
      const b = arena.floats((transB ? n : k) * ldb);
      const c = arena.floats(m * ldc);
      for (let i = 0; i < a.length; i++) a[i] = random();
      for (let i = 0; i < b.length; i++) b[i] = random();
      for (let i = 0; i < c.length; i++) c[i] = random();
      for (const accumulate of [false, true]) {
        const expected = Float32Array.from(c);
        gemmReference(transA, transB, m, n, k, a, lda, b, ldb, expected, ldc, accumulate);
        const before = Float32Array.from(c);
        gemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
        let worst = 0;
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++)
            worst = Math.max(worst, Math.abs(c[i * ldc + j] - expected[i * ldc + j]));
          // padding columns between rows stay untouched
          for (let j = n; j < ldc && i * ldc + j < c.length; j++)
            expect(c[i * ldc + j]).toBe(before[i * ldc + j]);
        }
        // float32 accumulation over k terms of size <= 1/4: error well under 1e-5 * k
        expect(worst).toBeLessThan(1e-6 * k + 1e-6);
      }
    });
  }
});

describe("gemm on worker threads", () => {
  it("gives bit-identical results to one thread, for every transpose", async () => {
    const random = seeded(11);
    const single = new Arena();
    const pooled = new Arena(undefined, 3);
    try {
      for (const [transA, transB] of [
        [false, true],
        [true, false],
        [false, false],
        [true, true],
      ] as const) {
        const [m, n, k] = [333, 97, 140]; // 9 MFLOP: over the parallel threshold; m not a multiple of the slices
        const values = (count: number) => Float32Array.from({ length: count }, random);
        const a = values(m * k);
        const b = values(k * n);
        const c0 = values(m * n);
        const run = (arena: Arena) => {
          const c = arena.copyOf(c0);
          gemm(
            transA,
            transB,
            m,
            n,
            k,
            arena.copyOf(a),
            transA ? m : k,
            arena.copyOf(b),
            transB ? k : n,
            c,
            n,
            true,
          );
          return c;
        };
        expect(run(pooled)).toEqual(run(single));
      }
    } finally {
      await pooled.close();
    }
  });
});
