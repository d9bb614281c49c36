/**
 * The weight-gradient GEMMs of the step in two layouts, side by side (cublasGemmEx, CUDA events):
 * dW = dY^T X as the engine writes it (C [M, D], both operands token-major) and its transpose
 * dW^T = X^T dY (C [D, M]), for in_proj (M = 3D) and out_proj (M = D) of ViT-B/16 at batch B,
 * both signals batched. Only the time is of interest: the operands hold arbitrary bf16 values.
 */
import { CUBLAS_WORKSPACE_BYTES, Cublas, type GemmCall } from "../../src/engines/cuda/cublas.js";
import { CudaDriver } from "../../src/engines/cuda/driver.js";
import { openCudaLibraries } from "../../src/engines/cuda/libraries.js";

export async function gemmLayouts(B: number): Promise<Record<string, number>[]> {
  const libs = await openCudaLibraries();
  const cu = CudaDriver.open(libs.koffi, libs.driver, 0);
  const stream = cu.createStream();
  const workspace = cu.alloc(CUBLAS_WORKSPACE_BYTES);
  const blas = new Cublas(libs.cublas, cu, stream, workspace);
  const D = 768;
  const R = B * 197;
  const dY = cu.alloc(2 * R * 3 * D * 2);
  const X = cu.alloc(R * D * 2);
  const C = cu.alloc(2 * 3 * D * D * 4);
  cu.fill32(dY, 0x3c003c00, R * 3 * D, stream); // bf16 pairs of 0.0078
  cu.fill32(X, 0x3c003c00, (R * D) / 2, stream);
  const start = cu.createEvent();
  const end = cu.createEvent();
  const time = (call: GemmCall) => {
    for (let i = 0; i < 3; i++) blas.gemm(call);
    cu.record(start, stream);
    for (let i = 0; i < 20; i++) blas.gemm(call);
    cu.record(end, stream);
    return cu.elapsed(start, end) / 20;
  };
  const rows: Record<string, number>[] = [];
  for (const M of [3 * D, D]) {
    const flops = 2 * 2 * M * D * R;
    const asWritten = time({
      M,
      N: D,
      K: R,
      A: { ptr: dY, ld: M, stride: R * M },
      transA: true,
      B: { ptr: X, ld: D, stride: 0 },
      C: { ptr: C, ld: D, stride: M * D, type: "f32" },
      batch: 2,
    });
    const transposed = time({
      M: D,
      N: M,
      K: R,
      A: { ptr: X, ld: D, stride: 0 },
      transA: true,
      B: { ptr: dY, ld: M, stride: R * M },
      C: { ptr: C, ld: M, stride: M * D, type: "f32" },
      batch: 2,
    });
    rows.push({
      M,
      rows: R,
      as_written_ms: +asWritten.toFixed(4),
      as_written_tflops: +(flops / asWritten / 1e9).toFixed(0),
      transposed_ms: +transposed.toFixed(4),
      transposed_tflops: +(flops / transposed / 1e9).toFixed(0),
    });
  }
  for (const p of [dY, X, C, workspace]) cu.free(p);
  cu.destroyEvent(start);
  cu.destroyEvent(end);
  blas.dispose();
  cu.destroyStream(stream);
  cu.close();
  return rows;
}
