/**
 * c_fc's GEMM with QuickGELU in its epilogue (kernels/mlp_gemm.cu) on the device:
 *   - against a float64 host reference on small shapes (rows not a multiple of the 128-row tile,
 *     K of 3 and 12 steps): x = bf16(A B^T + bias) as rounded from float64 up to the fp32
 *     accumulation's error, g = QuickGELU(x);
 *   - on ViT-B/16's shapes at batch B, against what it replaces, cuBLAS's GEMM plus
 *     bias_gelu_fwd: both outputs compared, both timed (CUDA events), with the backward's
 *     gelu_bwd reading the kept x with a zero bias beside reading u with c_fc's bias.
 */
import { f32ToBf16 } from "@unmask/clip";
import { normals } from "../../src/engines/cpu/random-model.js";
import { CUBLAS_WORKSPACE_BYTES, Cublas } from "../../src/engines/cuda/cublas.js";
import { CudaDriver } from "../../src/engines/cuda/driver.js";
import { Kernels, MLP_BOX_ROWS, MLP_K_STEP } from "../../src/engines/cuda/kernels.js";
import { openCudaLibraries } from "../../src/engines/cuda/libraries.js";

function randomBf16(n: number, seed: number, scale: number): Uint16Array {
  const draw = normals(seed);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = f32ToBf16(scale * draw());
  return out;
}

const bits = new DataView(new ArrayBuffer(4));
function bf16ToF32(b: number): number {
  bits.setUint32(0, (b & 0xffff) << 16);
  return bits.getFloat32(0);
}

const quickGelu = (x: number) => x / (1 + Math.exp(-1.702 * x));
const bf16Round = (x: number) => bf16ToF32(f32ToBf16(x));

export async function mlpGemmCheck(B: number): Promise<Record<string, unknown>[]> {
  const libs = await openCudaLibraries();
  const cu = CudaDriver.open(libs.koffi, libs.driver, 0);
  const stream = cu.createStream();
  const k = new Kernels(cu, stream);
  const workspace = cu.alloc(CUBLAS_WORKSPACE_BYTES);
  const blas = new Cublas(libs.cublas, cu, stream, workspace);
  const results: Record<string, unknown>[] = [];
  const upload = (data: ArrayBufferView) => {
    const ptr = cu.alloc(data.byteLength);
    cu.upload(ptr, data);
    return ptr;
  };
  const map = (ptr: number, rows: number, cols: number) =>
    upload(cu.encodeTensorMap(ptr, rows, cols, cols, MLP_BOX_ROWS, MLP_K_STEP));
  const download16 = (ptr: number, n: number) => {
    const out = new Uint16Array(n);
    cu.synchronize(stream);
    cu.download(out, ptr);
    return out;
  };

  // ---- small shapes against float64
  for (const [M, N, K] of [
    [300, 512, 192],
    [130, 256, 768],
  ]) {
    const A = randomBf16(M * K, 1, 1);
    const W = randomBf16(N * K, 2, 0.05);
    const bias = Float32Array.from(randomBf16(N, 3, 0.5), bf16ToF32);
    const [pA, pW, pBias] = [upload(A), upload(W), upload(bias)];
    const [pX, pG] = [cu.alloc(M * N * 2), cu.alloc(M * N * 2)];
    k.mlpGemmGelu({ mapA: map(pA, M, K), mapB: map(pW, N, K), bias: pBias, xout: pX, out: pG, M, N, K });
    const x = download16(pX, M * N);
    const g = download16(pG, M * N);
    let [xErr, xMax, gErr, gMax, beyondOneUlp] = [0, 0, 0, 0, 0];
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let ref = bias[n];
        for (let kk = 0; kk < K; kk++) ref += bf16ToF32(A[m * K + kk]) * bf16ToF32(W[n * K + kk]);
        const got = bf16ToF32(x[m * N + n]);
        xErr = Math.max(xErr, Math.abs(got - ref));
        xMax = Math.max(xMax, Math.abs(ref));
        // one bf16 rounding of the fp32 sum: within one ulp of the float64 value's rounding
        if (Math.abs(got - bf16Round(ref)) > Math.abs(ref) * 2 ** -7 + 1e-30) beyondOneUlp++;
        const gRef = quickGelu(got);
        gErr = Math.max(gErr, Math.abs(bf16ToF32(g[m * N + n]) - gRef));
        gMax = Math.max(gMax, Math.abs(gRef));
      }
    results.push({
      check: "mlp_gemm vs float64",
      M,
      N,
      K,
      x: xErr / xMax,
      xBeyondOneUlp: beyondOneUlp,
      g: gErr / gMax,
    });
    for (const ptr of [pA, pW, pBias, pX, pG]) cu.free(ptr);
  }

  // ---- ViT-B/16 shapes: fused against cuBLAS + bias_gelu_fwd
  const D = 768;
  const F = 3072;
  const R = B * 197;
  const h = upload(randomBf16(R * D, 5, 1));
  const dres = upload(randomBf16(2 * R * D, 6, 0.01));
  const fcW = upload(randomBf16(F * D, 7, 0.03));
  const projW = upload(randomBf16(D * F, 8, 0.03));
  const fcB = upload(Float32Array.from(randomBf16(F, 9, 0.5), bf16ToF32));
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
  };
  const compare = (a: number, b: number, n: number) => {
    const va = download16(a, n);
    const vb = download16(b, n);
    let [maxDiff, maxRef, differ] = [0, 0, 0];
    for (let i = 0; i < n; i++) {
      const p = bf16ToF32(va[i]);
      const q = bf16ToF32(vb[i]);
      if (va[i] !== vb[i]) differ++;
      maxDiff = Math.max(maxDiff, Math.abs(p - q));
      maxRef = Math.max(maxRef, Math.abs(q));
    }
    return { relMaxDiff: maxDiff / maxRef, differ: differ / n };
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
  const start = cu.createEvent();
  const end = cu.createEvent();
  const time = (f: () => void) => {
    for (let i = 0; i < 3; i++) f();
    cu.record(start, stream);
    for (let i = 0; i < 20; i++) f();
    cu.record(end, stream);
    return cu.elapsed(start, end) / 20;
  };
  const flops = 2 * R * F * D;
  for (let round = 0; round < 2; round++)
    for (const [name, f] of Object.entries(run)) {
      const ms = time(f);
      results.push({ time: name, B, round, ms: +ms.toFixed(4), tflops: +(flops / ms / 1e9).toFixed(1) });
    }
  return results;
}
