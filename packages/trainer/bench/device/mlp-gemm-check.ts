/**
 * The MLP GEMMs with QuickGELU (kernels/mlp_gemm.cu) on the device, c_fc's (mlp_gemm_gelu) and the
 * backward's dg (mlp_gemm_dgelu):
 *   - against a float64 host reference on small shapes (rows not a multiple of the 128-row tile,
 *     K of 3 and 12 steps): x = bf16(A B^T + bias) as rounded from float64 up to the fp32
 *     accumulation's error, g = QuickGELU(x), du = bf16(dg) QuickGELU'(x) for two signals;
 *   - on ViT-B/16's shapes at batch B, against what they replace, cuBLAS's GEMMs plus
 *     bias_gelu_fwd / gelu_bwd: outputs compared, all timed (CUDA events).
 */
import { CUBLAS_WORKSPACE_BYTES, Cublas } from "../../src/engines/cuda/cublas.js";
import { CudaDriver } from "../../src/engines/cuda/driver.js";
import { Kernels, MLP_BOX_ROWS, MLP_K_STEP, readFatbin } from "../../src/engines/cuda/kernels.js";
import { openCudaLibraries } from "../../src/engines/cuda/libraries.js";
import { bf16Floats, randomBf16, roundBf16 } from "./bf16.js";
import { relError } from "./fixture.js";

const quickGelu = (x: number) => x / (1 + Math.exp(-1.702 * x));
const quickGeluGrad = (x: number) => {
  const s = 1 / (1 + Math.exp(-1.702 * x));
  return s + 1.702 * x * s * (1 - s);
};
/** [rows, cols] bf16 bits transposed. */
function transpose(a: Uint16Array, rows: number, cols: number): Uint16Array {
  const t = new Uint16Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

export async function mlpGemmCheck(B: number): Promise<Record<string, unknown>[]> {
  const libs = await openCudaLibraries();
  const cu = CudaDriver.open(libs.koffi, libs.driver, 0);
  const stream = cu.createStream();
  const k = new Kernels(cu, stream, readFatbin("bf16"));
  const workspace = cu.alloc(CUBLAS_WORKSPACE_BYTES);
  const blas = new Cublas(libs.cublas, cu, stream, workspace, "bf16");
  const results: Record<string, unknown>[] = [];
  const upload = (data: ArrayBufferView) => {
    const ptr = cu.alloc(data.byteLength);
    cu.upload(ptr, data);
    return ptr;
  };
  const map = (ptr: number, rows: number, cols: number) =>
    upload(cu.encodeTensorMap(ptr, rows, cols, cols, MLP_BOX_ROWS, MLP_K_STEP, "bf16"));
  const downloadBits = (ptr: number, n: number) => {
    const out = new Uint16Array(n);
    cu.synchronize(stream);
    cu.download(out, ptr);
    return out;
  };
  const download = (ptr: number, n: number) => bf16Floats(downloadBits(ptr, n));

  // ---- small shapes against float64
  for (const [M, N, K] of [
    [300, 512, 192],
    [130, 256, 768],
  ]) {
    const A = randomBf16(M * K, 1, 1);
    const W = randomBf16(N * K, 2, 0.05);
    const bias = bf16Floats(randomBf16(N, 3, 0.5));
    const [pA, pW, pBias] = [upload(A), upload(W), upload(bias)];
    const [pX, pG] = [cu.alloc(M * N * 2), cu.alloc(M * N * 2)];
    k.mlpGemmGelu({ mapA: map(pA, M, K), mapB: map(pW, N, K), bias: pBias, xout: pX, out: pG, M, N, K });
    const x = download(pX, M * N);
    const g = download(pG, M * N);
    const [a, w] = [bf16Floats(A), bf16Floats(W)];
    const xRef = new Float64Array(M * N);
    let beyondOneUlp = 0;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let ref = bias[n];
        for (let kk = 0; kk < K; kk++) ref += a[m * K + kk] * w[n * K + kk];
        xRef[m * N + n] = ref;
        // one bf16 rounding of the fp32 sum: within one ulp of the float64 value's rounding
        if (Math.abs(x[m * N + n] - roundBf16(ref)) > Math.abs(ref) * 2 ** -7 + 1e-30) beyondOneUlp++;
      }
    // the backward for two signals' rows against the kernel's own x: dg through B = W, so that
    // dg [2M, N] = dgA W^T as the forward's GEMM
    const dgA = randomBf16(2 * M * K, 4, 1);
    const [pDgA, pDu] = [upload(dgA), cu.alloc(2 * M * N * 2)];
    k.mlpGemmDgelu({
      mapA: map(pDgA, 2 * M, K),
      mapB: map(pW, N, K),
      mapX: map(pX, M, N),
      out: pDu,
      xRows: M,
      N,
      K,
    });
    const du = download(pDu, 2 * M * N);
    const dgRows = bf16Floats(dgA);
    const duRef = new Float64Array(2 * M * N);
    for (let m = 0; m < 2 * M; m++)
      for (let n = 0; n < N; n++) {
        let dg = 0;
        for (let kk = 0; kk < K; kk++) dg += dgRows[m * K + kk] * w[n * K + kk];
        duRef[m * N + n] = dg * quickGeluGrad(x[(m % M) * N + n]);
      }
    results.push({
      check: "mlp_gemm vs float64",
      M,
      N,
      K,
      x: relError(x, xRef),
      xBeyondOneUlp: beyondOneUlp,
      g: relError(g, Float64Array.from(x, quickGelu)), // QuickGELU of the kernel's own x, in float64
      du: relError(du, duRef),
    });
    for (const ptr of [pA, pW, pBias, pX, pG, pDgA, pDu]) cu.free(ptr);
  }

  // ---- ViT-B/16 shapes: fused against cuBLAS + bias_gelu_fwd
  const D = 768;
  const F = 3072;
  const R = B * 197;
  const h = upload(randomBf16(R * D, 5, 1));
  const dres = upload(randomBf16(2 * R * D, 6, 0.01));
  const fcW = upload(randomBf16(F * D, 7, 0.03));
  const projBits = randomBf16(D * F, 8, 0.03);
  const projW = upload(projBits);
  const projT = upload(transpose(projBits, D, F));
  const fcB = upload(bf16Floats(randomBf16(F, 9, 0.5)));
  const zeroBias = cu.alloc(F * 4);
  cu.zero(zeroBias, F * 4);
  const [u, g, x, gFused] = [
    cu.alloc(R * F * 2),
    cu.alloc(R * F * 2),
    cu.alloc(R * F * 2),
    cu.alloc(R * F * 2),
  ];
  const [dF, dFused] = [cu.alloc(2 * R * F * 2), cu.alloc(2 * R * F * 2)];
  const [mapH, mapFc] = [map(h, R, D), map(fcW, F, D)];
  const [mapDres, mapProjT, mapX] = [map(dres, 2 * R, D), map(projT, F, D), map(x, R, F)];
  const fcGemm = () =>
    blas.gemm({
      M: R,
      N: F,
      K: D,
      A: { ptr: h, ld: D },
      B: { ptr: fcW, ld: D },
      transB: true,
      C: { ptr: u, ld: F },
    });
  const dgGemm = (out: number) =>
    blas.gemm({
      M: 2 * R,
      N: F,
      K: D,
      A: { ptr: dres, ld: D },
      B: { ptr: projW, ld: F },
      C: { ptr: out, ld: F },
    });
  const run = {
    cublasForward: () => {
      fcGemm();
      k.biasGeluFwd(u, fcB, g, R * F, F);
    },
    fusedForward: () =>
      k.mlpGemmGelu({ mapA: mapH, mapB: mapFc, bias: fcB, xout: x, out: gFused, M: R, N: F, K: D }),
    fusedForwardTeacher: () =>
      k.mlpGemmGelu({ mapA: mapH, mapB: mapFc, bias: fcB, xout: 0, out: gFused, M: R, N: F, K: D }),
    cublasGemmForward: fcGemm,
    // the backward from the fused forward's x
    cublasBackward: () => {
      dgGemm(dF);
      k.geluBwd(dF, x, zeroBias, R * F, F, 2);
    },
    fusedBackward: () =>
      k.mlpGemmDgelu({ mapA: mapDres, mapB: mapProjT, mapX, out: dFused, xRows: R, N: F, K: D }),
    cublasGemmBackward: () => dgGemm(dF),
  };
  // the largest difference relative to b's scale, and the fraction of values whose bits differ
  const compare = (a: number, b: number, n: number) => {
    const [va, vb] = [downloadBits(a, n), downloadBits(b, n)];
    let differ = 0;
    for (let i = 0; i < n; i++) if (va[i] !== vb[i]) differ++;
    return { relMaxDiff: relError(bf16Floats(va), bf16Floats(vb)), differ: differ / n };
  };
  run.cublasForward();
  run.fusedForward();
  results.push({ check: "fused vs cublas, g", B, ...compare(gFused, g, R * F) });
  // the backward's activation gradient from either forward's kept values
  dgGemm(dF);
  dgGemm(dFused);
  k.geluBwd(dF, u, fcB, R * F, F, 2);
  k.geluBwd(dFused, x, zeroBias, R * F, F, 2);
  results.push({
    check: "gelu_bwd from the fused x vs from cublas's u, du",
    B,
    ...compare(dFused, dF, 2 * R * F),
  });
  run.cublasBackward();
  run.fusedBackward();
  results.push({ check: "fused dgelu vs cublas + gelu_bwd, du", B, ...compare(dFused, dF, 2 * R * F) });
  const start = cu.createEvent();
  const end = cu.createEvent();
  const time = (f: () => void) => {
    for (let i = 0; i < 3; i++) f();
    cu.record(start, stream);
    for (let i = 0; i < 20; i++) f();
    cu.record(end, stream);
    return cu.elapsed(start, end) / 20;
  };
  for (let round = 0; round < 2; round++)
    for (const [name, f] of Object.entries(run)) {
      const ms = time(f);
      const flops = (name.includes("Backward") ? 4 : 2) * R * F * D;
      results.push({ time: name, B, round, ms: +ms.toFixed(4), tflops: +(flops / ms / 1e9).toFixed(1) });
    }
  return results;
}
