/**
 * Device check of the fused attention kernels (kernels/attention.cu) at ViT-B/16 shape (N = 197,
 * 12 heads, several 32-key chunks, partial tiles) against a float64 reference on the host:
 * forward o and lse, backward dq, dk, dv for two signals. Errors are max |a - b| / max |b|, of the
 * default kernels (pipelined forward, fused backward where they fit) unless named split_*. The
 * pipelined forward is also compared bit for bit with attn_fwd16 on enough images that its
 * persistent blocks take three (image, head) pairs or more each. On Hopper the warpgroup-MMA
 * forward (attn_fwd_wgmma, UNMASK_ATTN_FWD=wgmma) is checked against the same reference (wgmma_*,
 * the backward fed by its o and lse) and against attn_fwd_pipe over many pairs. The class-query
 * kernels (the last block) are checked against the same reference with dO on the class rows alone
 * (cls_*).
 */
import { f32ToBf16 } from "@unmask/clip";
import { CudaDriver } from "../../src/engines/cuda/driver.js";
import { Kernels, readFatbin } from "../../src/engines/cuda/kernels.js";
import { openCudaLibraries } from "../../src/engines/cuda/libraries.js";
import { bf16Floats, roundBf16 } from "./bf16.js";
import { relError } from "./fixture.js";
import { withEnv } from "./with-env.js";

function randomBf16(n: number, std: number, seed: number): { bits: Uint16Array; vals: Float64Array } {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const bits = new Uint16Array(n);
  const vals = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = std * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
    bits[i] = f32ToBf16(v);
    vals[i] = roundBf16(v);
  }
  return { bits, vals };
}

export async function attentionCheck(B = 2, N = 197, H = 12): Promise<Record<string, number>> {
  const libs = await openCudaLibraries();
  const cu = CudaDriver.open(libs.koffi, libs.driver, 0);
  const stream = cu.createStream();
  const k = new Kernels(cu, stream, readFatbin("bf16"));
  const D = H * 64;
  const R = B * N;
  const qkv = randomBf16(R * 3 * D, 1.5, 7);
  const dO = randomBf16(2 * R * D, 1, 11);
  const bias = new Float32Array(3 * D);
  for (let i = 0; i < bias.length; i++) bias[i] = 0.1 * Math.sin(i * 0.37);
  const dev = (bytes: number) => cu.alloc(bytes);
  const pQkv = dev(qkv.bits.byteLength);
  const pBias = dev(bias.byteLength);
  const pO = dev(R * D * 2);
  const pLse = dev(B * H * N * 4);
  const pDo = dev(dO.bits.byteLength);
  const pDqkv = dev(2 * R * 3 * D * 2);
  cu.upload(pQkv, qkv.bits);
  cu.upload(pBias, bias);
  cu.upload(pDo, dO.bits);
  const runKernels = (warps: string | undefined, backward: "split" | undefined, forward?: string) =>
    withEnv({ UNMASK_ATTN_WARPS: warps, UNMASK_ATTN_BWD: backward, UNMASK_ATTN_FWD: forward }, () => {
      cu.fill32(pO, 0, (R * D) / 2, stream);
      cu.fill32(pDqkv, 0, 3 * R * D, stream);
      k.attnFwd(pQkv, pBias, pO, pLse, B, N, H);
      k.attnBwd({ qkv: pQkv, bias: pBias, o: pO, dO: pDo, lse: pLse, dqkv: pDqkv, S: 2, B, N, H });
      cu.synchronize(stream);
      const oBits = new Uint16Array(R * D);
      cu.download(oBits, pO);
      const lse = new Float32Array(B * H * N);
      cu.download(lse, pLse);
      const dBits = new Uint16Array(2 * R * 3 * D);
      cu.download(dBits, pDqkv);
      return { oBits, lse, dBits };
    });
  // every forward block width gives the same bits (each output row is computed by one warp in the
  // same order), and so does the split backward at 4 and 8 warps; the fused backward's dk and dv
  // equal the split dkdv kernel's bit for bit, its dq differs by rounding only (the same dS values
  // in bf16, from K Q^T instead of Q K^T)
  const split4 = runKernels("4", "split");
  const split8 = runKernels("8", "split");
  const fwd16 = runKernels("16", "split");
  const { oBits, lse, dBits } = runKernels(undefined, undefined);
  // Hopper's warpgroup-MMA forward, and the backward reading its o and lse
  const wgmma = cu.computeCapability === 90 ? runKernels(undefined, undefined, "wgmma") : undefined;
  const differing = (
    a: ArrayLike<number>,
    b: ArrayLike<number>,
    from = 0,
    to = a.length,
    col?: [number, number],
  ) => {
    let n = 0;
    for (let i = from; i < to; i++) {
      if (col && (i % (3 * D) < col[0] || i % (3 * D) >= col[1])) continue;
      if (a[i] !== b[i]) n++;
    }
    return n;
  };
  const forwardDiffer = (x: { oBits: Uint16Array; lse: Float32Array }, y: typeof x) =>
    differing(x.oBits, y.oBits) + differing(x.lse, y.lse);
  const differ =
    forwardDiffer(split4, split8) +
    differing(split4.dBits, split8.dBits) +
    forwardDiffer(split4, fwd16) +
    forwardDiffer(split4, { oBits, lse });
  const fusedDkDvDiffer = differing(dBits, split8.dBits, 0, dBits.length, [D, 3 * D]);
  const fusedDqDiffer = differing(dBits, split8.dBits, 0, dBits.length, [0, D]);
  const o = bf16Floats(oBits);
  const dqkv = bf16Floats(dBits);
  // float64 reference (q, k, v with the bias added and rounded to bf16, as the kernels load them)
  const refO = new Float64Array(R * D);
  const refLse = new Float64Array(B * H * N);
  const refD = new Float64Array(2 * R * 3 * D);
  // the class query alone: o and lse of row 0, and the gradients when only row 0 has a dO
  const refDC = new Float64Array(2 * R * 3 * D);
  const scale = 1 / 8;
  const at = (r: number, c: number) => roundBf16(qkv.vals[r * 3 * D + c] + bias[c]);
  const P = new Float64Array(N * N);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const q = (i: number, d: number) => at(b * N + i, h * 64 + d);
      const kk = (j: number, d: number) => at(b * N + j, D + h * 64 + d);
      const v = (j: number, d: number) => at(b * N + j, 2 * D + h * 64 + d);
      const Q = new Float64Array(N * 64);
      const K = new Float64Array(N * 64);
      const V = new Float64Array(N * 64);
      for (let i = 0; i < N; i++)
        for (let d = 0; d < 64; d++) {
          Q[i * 64 + d] = q(i, d);
          K[i * 64 + d] = kk(i, d);
          V[i * 64 + d] = v(i, d);
        }
      for (let i = 0; i < N; i++) {
        let mx = -Infinity;
        for (let j = 0; j < N; j++) {
          let acc = 0;
          for (let d = 0; d < 64; d++) acc += Q[i * 64 + d] * K[j * 64 + d];
          P[i * N + j] = acc * scale;
          mx = Math.max(mx, acc * scale);
        }
        let sum = 0;
        for (let j = 0; j < N; j++) {
          P[i * N + j] = Math.exp(P[i * N + j] - mx);
          sum += P[i * N + j];
        }
        for (let j = 0; j < N; j++) P[i * N + j] /= sum;
        refLse[(b * H + h) * N + i] = (mx + Math.log(sum)) * Math.LOG2E;
        for (let d = 0; d < 64; d++) {
          let acc = 0;
          for (let j = 0; j < N; j++) acc += P[i * N + j] * V[j * 64 + d];
          refO[(b * N + i) * D + h * 64 + d] = acc;
        }
      }
      for (let s = 0; s < 2; s++) {
        const g0 = (d: number) => dO.vals[(s * R + b * N) * D + h * 64 + d];
        let D0 = 0;
        for (let d = 0; d < 64; d++) D0 += g0(d) * refO[b * N * D + h * 64 + d];
        const row = (j: number) => (s * R + b * N + j) * 3 * D;
        for (let j = 0; j < N; j++) {
          let dp = 0;
          for (let d = 0; d < 64; d++) dp += g0(d) * V[j * 64 + d];
          const ds = P[j] * (dp - D0);
          for (let d = 0; d < 64; d++) {
            refDC[row(0) + h * 64 + d] += ds * K[j * 64 + d] * scale;
            refDC[row(j) + D + h * 64 + d] = ds * Q[d] * scale;
            refDC[row(j) + 2 * D + h * 64 + d] = P[j] * g0(d);
          }
        }
      }
      for (let s = 0; s < 2; s++) {
        const g = (i: number, d: number) => dO.vals[(s * R + b * N + i) * D + h * 64 + d];
        const dS = new Float64Array(N * N);
        for (let i = 0; i < N; i++) {
          let Di = 0;
          for (let d = 0; d < 64; d++) Di += g(i, d) * refO[(b * N + i) * D + h * 64 + d];
          for (let j = 0; j < N; j++) {
            let dp = 0;
            for (let d = 0; d < 64; d++) dp += g(i, d) * V[j * 64 + d];
            dS[i * N + j] = P[i * N + j] * (dp - Di);
          }
        }
        const row = (i: number) => (s * R + b * N + i) * 3 * D;
        for (let i = 0; i < N; i++)
          for (let d = 0; d < 64; d++) {
            let dq = 0;
            let dk = 0;
            let dv = 0;
            for (let j = 0; j < N; j++) {
              dq += dS[i * N + j] * K[j * 64 + d];
              dk += dS[j * N + i] * Q[j * 64 + d];
              dv += P[j * N + i] * g(j, d);
            }
            refD[row(i) + h * 64 + d] = dq * scale;
            refD[row(i) + D + h * 64 + d] = dk * scale;
            refD[row(i) + 2 * D + h * 64 + d] = dv;
          }
      }
    }
  const part = (a: ArrayLike<number>, which: number) => {
    const out: number[] = [];
    for (let r = 0; r < 2 * R; r++) for (let c = 0; c < D; c++) out.push(a[r * 3 * D + which * D + c]);
    return out;
  };
  const splitD = bf16Floats(split8.dBits);
  const result = {
    block_widths_differing: differ,
    pipelined_vs_fwd16_many_pairs_differing: 0,
    fused_vs_split_dkdv_differing: fusedDkDvDiffer,
    fused_vs_split_dq_differing_values: fusedDqDiffer,
    split_dq: relError(part(splitD, 0), part(refD, 0)),
    o: relError(o, refO),
    lse: relError(lse, refLse),
    dq: relError(part(dqkv, 0), part(refD, 0)),
    dk: relError(part(dqkv, 1), part(refD, 1)),
    dv: relError(part(dqkv, 2), part(refD, 2)),
  };
  if (wgmma)
    Object.assign(result, {
      wgmma_o: relError(bf16Floats(wgmma.oBits), refO),
      wgmma_lse: relError(wgmma.lse, refLse),
      wgmma_dq: relError(part(bf16Floats(wgmma.dBits), 0), part(refD, 0)),
      wgmma_dk: relError(part(bf16Floats(wgmma.dBits), 1), part(refD, 1)),
      wgmma_dv: relError(part(bf16Floats(wgmma.dBits), 2), part(refD, 2)),
    });
  // the class-query kernels: dO of the class rows, compact [2B, D]
  const dOC = new Uint16Array(2 * B * D);
  for (let r = 0; r < 2 * B; r++) dOC.set(dO.bits.subarray(r * N * D, r * N * D + D), r * D);
  const pDoC = dev(dOC.byteLength);
  cu.upload(pDoC, dOC);
  const pOC = dev(B * D * 2);
  const pLseC = dev(B * H * 4);
  cu.fill32(pDqkv, 0x7fc07fc0, 3 * R * D, stream); // NaN: every value the kernels own must be written
  k.attnClsFwd(pQkv, pBias, pOC, pLseC, B, N, H);
  k.attnClsBwd({ qkv: pQkv, bias: pBias, o: pOC, dO: pDoC, lse: pLseC, dqkv: pDqkv, S: 2, B, N, H });
  cu.synchronize(stream);
  const oC = new Uint16Array(B * D);
  cu.download(oC, pOC);
  const lseC = new Float32Array(B * H);
  cu.download(lseC, pLseC);
  const dC = new Uint16Array(2 * R * 3 * D);
  cu.download(dC, pDqkv);
  const classRows = (a: ArrayLike<number>) => {
    const out: number[] = [];
    for (let b = 0; b < B; b++) for (let c = 0; c < D; c++) out.push(a[b * N * D + c]);
    return out;
  };
  const classLse = (a: ArrayLike<number>) => Array.from({ length: B * H }, (_, bh) => a[bh * N]);
  const dqkvC = bf16Floats(dC);
  // dq of the class rows (the kernel writes no other row's dq)
  const classDq = (a: ArrayLike<number>) => {
    const out: number[] = [];
    for (let r = 0; r < 2 * B; r++) for (let c = 0; c < D; c++) out.push(a[r * N * 3 * D + c]);
    return out;
  };
  Object.assign(result, {
    cls_o: relError(bf16Floats(oC), classRows(refO)),
    cls_lse: relError(lseC, classLse(refLse)),
    cls_dq: relError(classDq(dqkvC), classDq(refDC)),
    cls_dk: relError(part(dqkvC, 1), part(refDC, 1)),
    cls_dv: relError(part(dqkvC, 2), part(refDC, 2)),
    cls_vs_full_o: relError(bf16Floats(oC), classRows(o)),
    cls_unwritten: [...part(dqkvC, 1), ...part(dqkvC, 2), ...classDq(dqkvC)].filter(Number.isNaN).length,
  });
  for (const p of [pQkv, pBias, pO, pLse, pDo, pDqkv, pDoC, pOC, pLseC]) cu.free(p);
  const pipelineDiffer = pipelinedForwardDiffer(
    cu,
    k,
    stream,
    Math.ceil((3 * cu.multiprocessors) / H) + 1,
    N,
    H,
  );
  k.dispose();
  cu.destroyStream(stream);
  cu.close();
  result.pipelined_vs_fwd16_many_pairs_differing = pipelineDiffer.differing;
  return { ...result, ...pipelineDiffer.wgmma };
}

/**
 * o and lse values where attn_fwd_pipe and attn_fwd16 differ on B images (random qkv and bias),
 * and on Hopper how far attn_fwd_wgmma is from attn_fwd_pipe there (and how many of its values it
 * left unwritten).
 */
function pipelinedForwardDiffer(
  cu: CudaDriver,
  k: Kernels,
  stream: number,
  B: number,
  N: number,
  H: number,
): { differing: number; wgmma: Record<string, number> } {
  const D = H * 64;
  const R = B * N;
  const qkv = randomBf16(R * 3 * D, 1.5, 5);
  const bias = new Float32Array(3 * D).map((_, i) => 0.1 * Math.cos(i * 0.29));
  const pQkv = cu.alloc(qkv.bits.byteLength);
  const pBias = cu.alloc(bias.byteLength);
  const pO = cu.alloc(R * D * 2);
  const pLse = cu.alloc(B * H * N * 4);
  cu.upload(pQkv, qkv.bits);
  cu.upload(pBias, bias);
  const forward = (warps: string | undefined, kernel?: string) =>
    withEnv({ UNMASK_ATTN_WARPS: warps, UNMASK_ATTN_FWD: kernel }, () => {
      cu.fill32(pO, 0x7fc07fc0, (R * D) / 2, stream); // NaN: every row must be written
      cu.fill32(pLse, 0x7fc00000, B * H * N, stream);
      k.attnFwd(pQkv, pBias, pO, pLse, B, N, H);
      cu.synchronize(stream);
      const o = new Uint16Array(R * D);
      const lse = new Float32Array(B * H * N);
      cu.download(o, pO);
      cu.download(lse, pLse);
      return { o, lse };
    });
  const a = forward("16");
  const b = forward(undefined);
  let n = 0;
  for (let i = 0; i < a.o.length; i++) if (a.o[i] !== b.o[i]) n++;
  for (let i = 0; i < a.lse.length; i++) if (a.lse[i] !== b.lse[i]) n++;
  const wgmma: Record<string, number> = {};
  if (cu.computeCapability === 90) {
    const w = forward(undefined, "wgmma");
    Object.assign(wgmma, {
      wgmma_vs_pipe_many_pairs_o: relError(bf16Floats(w.o), bf16Floats(b.o)),
      wgmma_vs_pipe_many_pairs_lse: relError(w.lse, b.lse),
      wgmma_many_pairs_unwritten: [...bf16Floats(w.o), ...w.lse].filter(Number.isNaN).length,
    });
  }
  for (const p of [pQkv, pBias, pO, pLse]) cu.free(p);
  return { differing: n, wgmma };
}
