/**
 * Cublas's routing without a GPU: cuBLAS is a stand-in library whose functions record their
 * names, cuBLASLt a stand-in that records plans, heuristic queries and launches. Whether the
 * epilogue computes the right thing is the GPU suites' part (cuda-engine.gpu.test.ts).
 */
import { describe, expect, it } from "vitest";
import { Cublas, type GemmCall } from "./cublas.js";
import type { CublasLt } from "./cublas-lt.js";
import type { CudaDriver } from "./driver.js";
import type { Library } from "./libraries.js";

function cublas(lt?: { algorithms: number }) {
  const log: string[] = [];
  const lib = {
    func: (proto: string) => {
      const name = /NAME|(\w+)\(/.exec(proto)?.[1] ?? "";
      return (...args: unknown[]) => {
        if (name === "cublasCreate_v2") (args[0] as number[])[0] = 1;
        log.push(name);
        return 0;
      };
    },
  } as unknown as Library;
  const blas = new Cublas(lib, {} as CudaDriver, 0, 0);
  log.length = 0;
  if (lt)
    blas.lt = {
      plan: (c: GemmCall) => {
        log.push(`plan ${c.bias === undefined ? "" : "bias"}`);
        return { op: 1, a: 2, b: 3, c: 4 };
      },
      algorithms: (_: unknown, count: number) => {
        log.push(`algorithms ${count}`);
        return Array.from({ length: lt.algorithms }, (_, i) => Uint8Array.of(i));
      },
      matmul: (_: unknown, algo: Uint8Array, c: GemmCall) => log.push(`matmul ${algo[0]} bias ${c.bias}`),
      dispose: () => {},
    } as unknown as CublasLt;
  return { blas, log };
}

const call = (bias?: number): GemmCall => ({
  M: 128,
  N: 64,
  K: 32,
  A: { ptr: 1000, ld: 32 },
  B: { ptr: 2000, ld: 32 },
  transB: true,
  C: { ptr: 3000, ld: 64 },
  bias,
});

describe("Cublas bias epilogues", () => {
  it("runs calls with a bias through cuBLASLt's first heuristic algorithm, planned once a shape", () => {
    const { blas, log } = cublas({ algorithms: 3 });
    expect(blas.supportsEpilogue(call())).toBe(true);
    blas.gemm(call(5000));
    blas.gemm(call(6000)); // same shape, another layer's bias
    blas.gemm(call()); // no bias: cublasGemmEx as before
    expect(log).toEqual([
      "plan bias",
      "algorithms 1",
      "matmul 0 bias 5000",
      "matmul 0 bias 6000",
      "cublasGemmEx",
    ]);
    expect(blas.calls).toBe(3);
  });

  it("reports no support, and refuses a bias call, without cuBLASLt or an algorithm for it", () => {
    for (const s of [cublas(), cublas({ algorithms: 0 })]) {
      expect(s.blas.supportsEpilogue(call())).toBe(false);
      expect(() => s.blas.gemm(call(5000))).toThrow(
        expect.objectContaining({
          code: "CUDA_ERROR",
          message: expect.stringMatching(/bias epilogue of 128x64x32/),
        }),
      );
      expect(s.log.filter((l) => l.startsWith("matmul") || l === "cublasGemmEx")).toEqual([]);
    }
  });
});
