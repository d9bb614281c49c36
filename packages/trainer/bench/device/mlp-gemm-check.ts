/**
 * The MLP GEMMs with QuickGELU epilogues (kernels/mlp_gemm.cu) on the device:
 *   - against a float64 host reference on small shapes (rows not a multiple of the 128-row tile,
 *     K of 3 and 12 steps): x = bf16(A B^T + bias) exactly as rounded from float64 up to the
 *     fp32 accumulation's error, g = QuickGELU(x), du = dg * QuickGELU'(x);
 *   - timed against what they replace, cuBLAS's GEMM plus bias_gelu_fwd / gelu_bwd, on ViT-B/16's
 *     shapes at batch B (CUDA events), and their outputs compared with that path's.
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
const quickGeluGrad = (x: number) => {
  const s = 1 / (1 + Math.exp(-1.702 * x));
  return s + 1.702 * x * s * (1 - s);
};
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
  const map = (ptr: number, rows: number, cols: number, boxRows: number) =>
    upload(cu.encodeTensorMap(ptr, rows, cols, cols, boxRows, MLP_K_STEP));
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
    const dgA = randomBf16(2 * M * K, 4, 1); // two signals' rows
    const [pA, pW, pBias, pDg] = [upload(A), upload(W), upload(bias), upload(dgA)];
    const [pX, pG, pDu] = [cu.alloc(M * N * 2), cu.alloc(M * N * 2), cu.alloc(2 * M * N * 2)];
    const mapW = map(pW, N, K, MLP_BOX_ROWS);
    k.mlpGemmGelu({
      mapA: map(pA, M, K, MLP_BOX_ROWS),
      mapB: mapW,
      bias: pBias,
      xout: pX,
      out: pG,
      M,
      N,
      K,
    });
    const x = download16(pX, M * N);
    const g = download16(pG, M * N);
    k.mlpGemmDgelu({
      mapA: map(pDg, 2 * M, K, MLP_BOX_ROWS),
      mapB: mapW,
      xin: pX,
      xRows: M,
      out: pDu,
      M: 2 * M,
      N,
      K,
    });
    const du = download16(pDu, 2 * M * N);
    const dot = (a: Uint16Array, row: number, n: number) => {
      let sum = 0;
      for (let kk = 0; kk < K; kk++) sum += bf16ToF32(a[row * K + kk]) * bf16ToF32(W[n * K + kk]);
      return sum;
    };
    let xErr = 0;
    let xOffByMore = 0;
    let gErr = 0;
    let duErr = 0;
    let xMax = 0;
    let gMax = 0;
    let duMax = 0;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        const ref = dot(A, m, n) + bias[n];
        const got = bf16ToF32(x[m * N + n]);
        xErr = Math.max(xErr, Math.abs(got - ref));
        xMax = Math.max(xMax, Math.abs(ref));
        // one bf16 rounding of the fp32 sum: within one ulp of the float64 value's rounding
        if (Math.abs(got - bf16Round(ref)) > Math.abs(ref) * 2 ** -7 + 1e-30) xOffByMore++;
        const gRef = quickGelu(got);
        gErr = Math.max(gErr, Math.abs(bf16ToF32(g[m * N + n]) - gRef));
        gMax = Math.max(gMax, Math.abs(gRef));
        for (let s = 0; s < 2; s++) {
          const duRef = dot(dgA, s * M + m, n) * quickGeluGrad(got);
          duErr = Math.max(duErr, Math.abs(bf16ToF32(du[(s * M + m) * N + n]) - duRef));
          duMax = Math.max(duMax, Math.abs(duRef));
        }
      }
    results.push({
      check: "mlp_gemm vs float64",
      M,
      N,
      K,
      x: xErr / xMax,
      xBeyondOneUlp: xOffByMore,
      g: gErr / gMax,
      du: duErr / duMax,
    });
    for (const ptr of [pA, pW, pBias, pDg, pX, pG, pDu]) cu.free(ptr);
  }

  // ---- ViT-B/16 shapes: fused against cuBLAS + the activation kernels
  const D = 768;
  const F = 3072;
  const R = B * 197;
  const h = upload(randomBf16(R * D, 5, 1));
  const dres = upload(randomBf16(2 * R * D, 6, 0.01));
  const fcW = upload(randomBf16(F * D, 7, 0.03));
  const projW = randomBf16(D * F, 8, 0.03);
  const projT = new Uint16Array(F * D);
  for (let d = 0; d < D; d++) for (let f = 0; f < F; f++) projT[f * D + d] = projW[d * F + f];
  const pProjW = upload(projW);
  const pProjT = upload(projT);
  const fcB = upload(Float32Array.from(randomBf16(F, 9, 0.5), bf16ToF32));
  const [u, g, x, gFused] = [
    cu.alloc(R * F * 2),
    cu.alloc(R * F * 2),
    cu.alloc(R * F * 2),
    cu.alloc(R * F * 2),
  ];
  const [dF, dFused] = [cu.alloc(2 * R * F * 2), cu.alloc(2 * R * F * 2)];
  const mapH = map(h, R, D, MLP_BOX_ROWS);
  const mapFc = map(fcW, F, D, MLP_BOX_ROWS);
  const mapDres = map(dres, 2 * R, D, MLP_BOX_ROWS);
  const mapProjT = map(pProjT, F, D, MLP_BOX_ROWS);
  // cuBLAS's c_fc (u, before its bias) and dg GEMMs, as the engine calls them without the fused path
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
  const dgGemm = () =>
    blas.gemm({
      M: 2 * R,
      N: F,
      K: D,
      A: { ptr: dres, ld: D },
      B: { ptr: pProjW, ld: F },
      C: { ptr: dF, ld: F },
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
    cublasBackward: () => {
      dgGemm();
      k.geluBwd(dF, u, fcB, R * F, F, 2);
    },
    fusedBackward: () =>
      k.mlpGemmDgelu({ mapA: mapDres, mapB: mapProjT, xin: x, xRows: R, out: dFused, M: 2 * R, N: F, K: D }),
    cublasGemmForward: fcGemm,
    cublasGemmBackward: dgGemm,
  };
  // outputs of both paths (the cuBLAS forward's u feeds its backward, the fused x its own)
  run.cublasForward();
  run.fusedForward();
  run.cublasBackward();
  run.fusedBackward();
  const compare = (a: number, b: number, n: number) => {
    const va = download16(a, n);
    const vb = download16(b, n);
    let maxDiff = 0;
    let maxRef = 0;
    let differ = 0;
    for (let i = 0; i < n; i++) {
      const p = bf16ToF32(va[i]);
      const q = bf16ToF32(vb[i]);
      if (va[i] !== vb[i]) differ++;
      maxDiff = Math.max(maxDiff, Math.abs(p - q));
      maxRef = Math.max(maxRef, Math.abs(q));
    }
    return { relMaxDiff: maxDiff / maxRef, differ: differ / n };
  };
  results.push({ check: "fused vs cublas, g", B, ...compare(gFused, g, R * F) });
  results.push({ check: "fused vs cublas, du", B, ...compare(dFused, dF, 2 * R * F) });
  const start = cu.createEvent();
  const end = cu.createEvent();
  const time = (f: () => void) => {
    for (let i = 0; i < 3; i++) f();
    cu.record(start, stream);
    for (let i = 0; i < 20; i++) f();
    cu.record(end, stream);
    return cu.elapsed(start, end) / 20;
  };
  const flops = { forward: 2 * R * F * D, backward: 4 * R * F * D };
  for (let round = 0; round < 2; round++)
    for (const [name, f] of Object.entries(run)) {
      const ms = time(f);
      const fl = name.includes("ackward") ? flops.backward : flops.forward;
      const backward = name.includes("ackward");
      // each fused output against cuBLAS's (round 0)
      const against =
        round === 0 && name.startsWith("fused")
          ? compare(backward ? dFused : gFused, backward ? dF : g, (backward ? 2 : 1) * R * F)
          : {};
      results.push({
        time: name,
        B,
        round,
        ms: +ms.toFixed(4),
        tflops: +(fl / ms / 1e9).toFixed(1),
        ...against,
      });
    }
  return results;
}
