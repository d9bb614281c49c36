/**
 * The weight-gradient GEMMs of the step in two layouts, side by side (cublasGemmEx, CUDA events):
 * dW = dY^T X as the engine writes it (C [M, D], both operands token-major) and its transpose
 * dW^T = X^T dY (C [D, M]), for in_proj (M = 3D) and out_proj (M = D) of ViT-B/16 at batch B,
 * both signals batched, and with X stored feature-major (X^T [D, rows]: K contiguous, one K-major
 * operand like the NN GEMM), beside the input-gradient GEMM of in_proj (NN, the same FLOPs). Operands
 * constant (`random` false) or random normal bf16 values: GEMMs draw more power on random data,
 * and the clock may drop under it. Only the time is of interest.
 */
import { CUBLAS_WORKSPACE_BYTES, Cublas, type GemmCall } from "../../src/engines/cuda/cublas.js";
import { CublasLt } from "../../src/engines/cuda/cublas-lt.js";
import { CudaDriver } from "../../src/engines/cuda/driver.js";
import { openCudaLibraries } from "../../src/engines/cuda/libraries.js";
import { randomBf16 } from "./bf16.js";

export async function gemmLayouts(B: number, random = false): Promise<Record<string, number>[]> {
  const libs = await openCudaLibraries();
  const cu = CudaDriver.open(libs.koffi, libs.driver, 0);
  const stream = cu.createStream();
  const workspace = cu.alloc(CUBLAS_WORKSPACE_BYTES);
  const blas = new Cublas(libs.cublas, cu, stream, workspace, "bf16");
  const D = 768;
  const R = B * 197;
  const dY = cu.alloc(2 * R * 3 * D * 2);
  const X = cu.alloc(R * D * 2);
  const C = cu.alloc(2 * 3 * D * D * 4);
  if (random) {
    cu.upload(dY, randomBf16(2 * R * 3 * D, 3, 0.05));
    cu.upload(X, randomBf16(R * D, 5, 0.05));
  } else {
    cu.fill32(dY, 0x3c003c00, R * 3 * D, stream); // bf16 pairs of 0.0078
    cu.fill32(X, 0x3c003c00, (R * D) / 2, stream);
  }
  const W = cu.alloc(3 * D * D * 2);
  const dX = cu.alloc(2 * R * D * 2);
  cu.fill32(W, 0x3c003c00, (3 * D * D) / 2, stream);
  const start = cu.createEvent();
  const end = cu.createEvent();
  // ms a run of `run` takes on the stream: 20 timed after 3 warm-up runs
  const timeRun = (run: () => void) => {
    for (let i = 0; i < 3; i++) run();
    cu.record(start, stream);
    for (let i = 0; i < 20; i++) run();
    cu.record(end, stream);
    return cu.elapsed(start, end) / 20;
  };
  const time = (call: GemmCall) => timeRun(() => blas.gemm(call));
  // dW_s [M, D] = dY_s^T X for both signals, as the engine writes it (X token-major [R, D]), or
  // with X kept feature-major (X^T [D, R], K contiguous: one K-major operand, as in the NN GEMM)
  const weightGradient = (M: number, featureMajorX = false): GemmCall => ({
    M,
    N: D,
    K: R,
    A: { ptr: dY, ld: M, stride: R * M },
    transA: true,
    B: { ptr: X, ld: featureMajorX ? R : D, stride: 0 },
    transB: featureMajorX,
    C: { ptr: C, ld: D, stride: M * D, type: "f32" },
    batch: 2,
  });
  const rows: Record<string, number>[] = [];
  for (const M of [3 * D, D]) {
    const flops = 2 * 2 * M * D * R;
    const asWritten = time(weightGradient(M));
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
    const kMajorX = time(weightGradient(M, true));
    // the input gradient of the same layer: dX [2R, D] = dY [2R, M] W [M, D] (NN, the same FLOPs)
    const inputGradient = time({
      M: 2 * R,
      N: D,
      K: M,
      A: { ptr: dY, ld: M },
      B: { ptr: W, ld: D },
      C: { ptr: dX, ld: D },
    });
    rows.push({
      M,
      rows: R,
      random: random ? 1 : 0,
      input_gradient_ms: +inputGradient.toFixed(4),
      input_gradient_tflops: +(flops / inputGradient / 1e9).toFixed(0),
      as_written_ms: +asWritten.toFixed(4),
      as_written_tflops: +(flops / asWritten / 1e9).toFixed(0),
      transposed_ms: +transposed.toFixed(4),
      transposed_tflops: +(flops / transposed / 1e9).toFixed(0),
      k_major_x_ms: +kMajorX.toFixed(4),
      k_major_x_tflops: +(flops / kMajorX / 1e9).toFixed(0),
    });
  }
  // every cuBLASLt candidate for the weight gradients as written: its time, and whether it gives
  // cublasGemmEx's bits (the only ones GEMM tuning may take)
  if (libs.cublasLt) {
    const lt = new CublasLt(libs.cublasLt, stream, workspace, "bf16");
    for (const M of [3 * D, D]) {
      const call = weightGradient(M);
      const words = 2 * M * D;
      const reference = new Float32Array(words);
      blas.gemm(call);
      cu.download(reference, C);
      const defaultMs = time(call);
      const plan = lt.plan(call);
      lt.algorithms(plan, 16).forEach((algo, rank) => {
        const run = () => lt.matmul(plan, algo, call);
        try {
          run();
        } catch {
          return;
        }
        const got = new Float32Array(words);
        cu.synchronize(stream);
        cu.download(got, C);
        let differing = 0;
        let worst = 0;
        for (let i = 0; i < words; i++)
          if (got[i] !== reference[i]) {
            differing++;
            worst = Math.max(worst, Math.abs(got[i] - reference[i]) / (Math.abs(reference[i]) + 1e-30));
          }
        const ms = timeRun(run);
        rows.push({
          M,
          candidate: rank,
          ms: +ms.toFixed(4),
          tflops: +((2 * 2 * M * D * R) / ms / 1e9).toFixed(0),
          gemm_ex_ms: +defaultMs.toFixed(4),
          differing,
          worst_relative: +worst.toExponential(2),
        });
      });
    }
    lt.dispose();
  }
  for (const p of [dY, X, C, W, dX, workspace]) cu.free(p);
  cu.destroyEvent(start);
  cu.destroyEvent(end);
  blas.dispose();
  cu.destroyStream(stream);
  cu.close();
  return rows;
}
