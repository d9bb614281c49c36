/**
 * Loads kernels/unmask.fatbin, or unmask-fp16.fatbin (the engine's precision), with
 * cuModuleLoadData and launches its kernels: one launcher per
 * kernel, computing the grid from the shapes, asserting what the kernel assumes, launching on the
 * engine's stream. Shapes and dtypes are those of the kernel sources' header comments.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { UnmaskError } from "@unmask/clip";
import type { CudaDriver, KernelArg } from "./driver.js";
import { DEFAULT_PRECISION, fatbinName, type Precision } from "./precision.js";
import type { LaunchProfiler } from "./profile.js";

const KERNEL_NAMES = [
  "augment_crop",
  "patchify",
  "embed_ln_fwd",
  "residual_ln_fwd",
  "ln_recompute",
  "ln_bwd",
  "ln_bwd_768",
  "embed_ln_bwd",
  "f32_to_lowp",
  "attn_fwd",
  "attn_bwd_dq",
  "attn_bwd_dkdv",
  "attn_fwd8",
  "attn_bwd_dq8",
  "attn_bwd_dkdv8",
  "attn_fwd16",
  "attn_fwd_pipe",
  "attn_fwd_wgmma",
  "attn_bwd_fused",
  "attn_cls_fwd",
  "attn_cls_bwd",
  "copy_rows",
  "bias_gelu_fwd",
  "gelu_bwd",
  "mlp_gemm_gelu",
  "mlp_gemm_dgelu",
  "head_forward",
  "head_step",
  "mask_sumsq",
  "mask_norms",
  "mask_apply",
  "mask_update",
  "bits_digest",
] as const;
type KernelName = (typeof KERNEL_NAMES)[number];

/** Rows of at most this many values fit one warp's registers (kernels/common.cuh MAX_PER_LANE). */
export const MAX_ROW = 1024;
const ROWS_PER_BLOCK = 4;
/** kernels/attention.cu: shared tile row stride (bf16 elements). */
const ATT_LD = 72;
/** Shared memory one block may take (227 KiB on Hopper and Ampere's A100). */
const SHARED_PER_BLOCK = 227 * 1024;

type ForwardKernel = "wgmma" | "pipe" | 4 | 8 | 16;

/**
 * The forward attention kernel: attn_fwd_pipe (kernels/attention.cu: persistent blocks, one warp
 * per 16 queries, the next (image, head)'s tiles loading during this one) where two stages of
 * tiles fit (N <= 256), else one block per (image, head) or per 16 W queries with W warps
 * (attn_fwd 4, attn_fwd8 8, attn_fwd16 16), the widest that fits. All give bit-identical results;
 * UNMASK_ATTN_WARPS=4|8|16 picks one of the W kernels (benches, checks). UNMASK_ATTN_FWD=wgmma
 * picks attn_fwd_wgmma on Hopper (kernels/attention_wgmma.cu: warpgroup MMAs; other bits, within
 * bf16 rounding; in the step within the spread of attn_fwd_pipe, bench/device/NOTES.md rounds 8
 * and 9), and UNMASK_ATTN_FWD=pipe keeps the default.
 */
function forwardKernel(N: number, computeCapability: number): ForwardKernel {
  if (
    process.env.UNMASK_ATTN_FWD === "wgmma" &&
    computeCapability === 90 &&
    wgmmaForwardShared(N) <= SHARED_PER_BLOCK
  )
    return "wgmma";
  if (
    process.env.UNMASK_ATTN_WARPS === undefined &&
    N <= 256 &&
    pipelinedForwardShared(N) <= SHARED_PER_BLOCK
  )
    return "pipe";
  return attentionWarps(N);
}

/**
 * Dynamic shared bytes of attn_fwd_wgmma: two stages of q (64 rows a warpgroup tile), k (whole
 * 200-key chunks) and v tiles (the last chunk's last 16-key step reads 8 rows past it), 128 bytes
 * a row, and 1 KB to align them to 1024 bytes.
 */
export function wgmmaForwardShared(N: number): number {
  const qRows = Math.ceil(N / 64) * 64;
  const kRows = Math.ceil(N / 200) * 200;
  return 2 * (qRows + kRows + kRows + 8) * 128 + 1024;
}

/** Warps per block of the W kernels: UNMASK_ATTN_WARPS=4|8|16, else the widest whose tiles fit. */
function attentionWarps(N: number): 4 | 8 | 16 {
  const forced = process.env.UNMASK_ATTN_WARPS;
  if (forced === "4" || forced === "8" || forced === "16") return Number(forced) as 4 | 8 | 16;
  if (N <= 256 && attentionShared(16, N).fwd <= SHARED_PER_BLOCK) return 16;
  const s = attentionShared(8, N);
  return Math.max(s.fwd, s.dq, s.dkdv) <= SHARED_PER_BLOCK ? 8 : 4;
}

/** Dynamic shared bytes of attn_fwd_pipe: two stages of q (roundup(N, 16) rows), k, v (roundup(N, 32)) tiles. */
function pipelinedForwardShared(N: number): number {
  return 2 * (Math.ceil(N / 16) * 16 + 2 * Math.ceil(N / 32) * 32) * ATT_LD * 2;
}

/** Dynamic shared bytes of the three attention kernels with W warps per block. */
function attentionShared(W: number, N: number): { fwd: number; dq: number; dkdv: number } {
  const Np = Math.ceil(N / 32) * 32;
  const Nl = Math.ceil(N / (4 * W)) * 4 * W;
  return {
    fwd: (2 * Np + 16 * W) * ATT_LD * 2,
    dq: (2 * Np + 32 * W) * ATT_LD * 2 + 64 * W,
    dkdv: (2 * Nl + 32 * W) * ATT_LD * 2 + 8 * Nl,
  };
}

/** kernels/attention.cu attn_bwd_fused: one warp per 16 tokens, at most 13 warps (416 threads). */
const FUSED_BACKWARD_MAX_TOKENS = 208;

/** Dynamic shared bytes of attn_bwd_fused: q, k, v, dO tiles, dS^T (o before it), lse and S rows of D. */
function fusedBackwardShared(N: number, S: number): number {
  const Nq = Math.ceil(N / 16) * 16;
  return 4 * Nq * ATT_LD * 2 + Nq * Math.max(Nq + 8, ATT_LD) * 2 + 4 * Nq * (1 + S);
}

/**
 * The one-kernel backward (attn_bwd_fused) where every token fits one block, else the split pair
 * (attn_bwd_dq + attn_bwd_dkdv). UNMASK_ATTN_BWD=split forces the pair (benches, checks).
 */
function fusedBackward(N: number, S: number): boolean {
  if (process.env.UNMASK_ATTN_BWD === "split") return false;
  return N <= FUSED_BACKWARD_MAX_TOKENS && fusedBackwardShared(N, S) <= SHARED_PER_BLOCK;
}

/** kernels/class_attention.cu: warps per block (one per (image, head) or (signal, image, head)). */
const CLS_WARPS = 4;

/** Most tokens the fused attention holds in shared memory (227 KiB per block on Hopper). */
export const MAX_TOKENS = 704;
const HEAD_THREADS = 256;
/** kernels/update.cu SUMSQ_BLOCKS: partial sums per masked tensor. */
export const SUMSQ_BLOCKS = 1024;

/** The environment variable that points at the fatbin of `precision` instead of kernels/. */
function fatbinVariable(precision: Precision): string {
  return precision === "fp16" ? "UNMASK_CUDA_FATBIN_FP16" : "UNMASK_CUDA_FATBIN";
}

/**
 * Where the fatbin of `precision` is: UNMASK_CUDA_FATBIN (bf16) or UNMASK_CUDA_FATBIN_FP16, else
 * the package's kernels/ folder.
 */
export function fatbinPath(precision: Precision = DEFAULT_PRECISION): string {
  return (
    process.env[fatbinVariable(precision)] ??
    fileURLToPath(new URL(`../../../kernels/${fatbinName(precision)}`, import.meta.url))
  );
}

/** The kernels built for `precision`. @throws UnmaskError CUDA_UNAVAILABLE where the file is missing */
export function readFatbin(precision: Precision = DEFAULT_PRECISION): Uint8Array {
  const path = fatbinPath(precision);
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new UnmaskError(
      "CUDA_UNAVAILABLE",
      `the CUDA kernels ${path} are missing (build them with scripts/build-kernels.mjs, or set ${fatbinVariable(precision)})`,
      { cause, subject: path },
    );
  }
}

const p = (v: number): KernelArg => ["p", v];
const i = (v: number): KernelArg => ["i", v];
const f = (v: number): KernelArg => ["f", v];
const l = (v: number): KernelArg => ["l", v];
const u = (v: number): KernelArg => ["u", v];

/** Pointers and shapes of an attention backward (attnBwd, attnClsBwd). */
export interface AttentionBackward {
  qkv: number;
  /** in_proj's fp32 bias, or 0 where the GEMM's epilogue added it to qkv. */
  bias: number;
  o: number;
  dO: number;
  lse: number;
  dqkv: number;
  S: number;
  B: number;
  N: number;
  H: number;
}

/** The pointer arguments both attention backward kernels take first, in their order. */
function attentionPointers(a: AttentionBackward): KernelArg[] {
  return [p(a.qkv), p(a.bias), p(a.o), p(a.dO), p(a.lse), p(a.dqkv)];
}

function assert(ok: boolean, what: string): void {
  if (!ok) throw new UnmaskError("CUDA_SHAPE", `cuda kernel precondition failed: ${what}`);
}

/** What kernels/mlp.cu assumes: rows of F values, F a multiple of 8, fewer than 2^32 groups of 8. */
function assertMlpRows(total: number, F: number): void {
  assert(F % 8 === 0 && total % F === 0 && total / 8 < 2 ** 32, `MLP rows of ${F} (a multiple of 8) values`);
}

/**
 * kernels/mlp_gemm.cu: output tile, TMA box rows (A's tile; B's in two boxes), K step, ring
 * stages, threads (a producer warpgroup, two consumer warpgroups).
 */
export const MLP_TILE_ROWS = 128;
export const MLP_TILE_COLS = 256;
export const MLP_BOX_ROWS = 128;
export const MLP_K_STEP = 64;
const MLP_STAGES = 3;
const MLP_THREADS = 384;
/**
 * Dynamic shared bytes of the MLP GEMMs: the stages (A and B tiles), the staged output tile (bf16
 * rows of 256 values + 16 bytes; the backward's x and du use 512 bytes of each), the barriers,
 * 1 KB to align them.
 */
const MLP_SHARED =
  1024 +
  MLP_STAGES * (MLP_TILE_ROWS + MLP_TILE_COLS) * MLP_K_STEP * 2 +
  MLP_TILE_ROWS * (MLP_TILE_COLS * 2 + 16) +
  (2 * MLP_STAGES + 2) * 8;

/**
 * Whether c_fc's GEMM with QuickGELU in its epilogue (kernels/mlp_gemm.cu) runs here for width D
 * and hidden width F: Hopper (its sm_90a code), a driver that encodes TMA tensor maps, F a
 * multiple of the 256-column tile and D of the 64-wide K step. UNMASK_MLP_GEMM=cublas keeps
 * cuBLAS + bias_gelu_fwd (benches, checks).
 */
export function fusedMlpSupported(
  cu: Pick<CudaDriver, "computeCapability" | "canEncodeTensorMaps">,
  D: number,
  F: number,
): boolean {
  return (
    process.env.UNMASK_MLP_GEMM !== "cublas" &&
    cu.computeCapability === 90 &&
    cu.canEncodeTensorMaps === true &&
    F % MLP_TILE_COLS === 0 &&
    D % MLP_K_STEP === 0
  );
}

/**
 * Whether the backward's dg GEMM runs with QuickGELU' in its epilogue (kernels/mlp_gemm.cu
 * mlp_gemm_dgelu) where the fused c_fc runs (it reads the x that one keeps): unless
 * UNMASK_MLP_GEMM=forward, which fuses c_fc alone (benches, checks).
 */
export function fusedMlpBackward(): boolean {
  return process.env.UNMASK_MLP_GEMM !== "forward";
}

export class Kernels {
  private readonly fn = new Map<KernelName, number>();
  private readonly module: number;
  private readonly sharedLimit = new Map<KernelName, number>();
  /** Launches issued (for benches). */
  launches = 0;
  /** Bench hook: brackets every launch with events (eager steps only). */
  profiler?: LaunchProfiler;
  /** Launch nothing (the GEMM tuning pass walks a step for its GEMMs alone). */
  dryRun = false;

  constructor(
    private readonly cu: CudaDriver,
    private readonly stream: number,
    image: Uint8Array = readFatbin(),
  ) {
    this.module = cu.loadModule(image);
    for (const name of KERNEL_NAMES) this.fn.set(name, cu.getFunction(this.module, name));
  }

  private go(
    name: KernelName,
    blocks: number | [number, number, number],
    threads: number,
    shared: number,
    args: KernelArg[],
  ): void {
    const grid: [number, number, number] = typeof blocks === "number" ? [blocks, 1, 1] : blocks;
    if (grid[0] * grid[1] * grid[2] <= 0 || this.dryRun) return;
    this.launches++;
    const fn = this.fn.get(name) as number;
    if (shared > 48 * 1024 && (this.sharedLimit.get(name) ?? 0) < shared) {
      this.cu.setMaxDynamicShared(fn, shared);
      this.sharedLimit.set(name, shared);
    }
    const run = () => this.cu.launch(name, fn, grid, [threads, 1, 1], shared, this.stream, args);
    if (this.profiler) this.profiler.around(name, 0, run);
    else run();
  }

  private elementwise(name: KernelName, count: number, args: KernelArg[]): void {
    this.go(name, Math.ceil(count / 256), 256, 0, args);
  }

  private rows(name: KernelName, rows: number, args: KernelArg[]): void {
    this.go(name, Math.ceil(rows / ROWS_PER_BLOCK), 32 * ROWS_PER_BLOCK, 0, args);
  }

  augmentCrop(a: {
    cache: number;
    indices: number;
    boxes: number;
    flips: number;
    out: number;
    B: number;
    H: number;
    W: number;
    R: number;
    mean: readonly number[];
    std: readonly number[];
  }): void {
    this.elementwise("augment_crop", a.B * a.R * a.R, [
      p(a.cache),
      p(a.indices),
      p(a.boxes),
      p(a.flips),
      p(a.out),
      i(a.B),
      i(a.H),
      i(a.W),
      i(a.R),
      f(a.mean[0]),
      f(a.mean[1]),
      f(a.mean[2]),
      f(a.std[0]),
      f(a.std[1]),
      f(a.std[2]),
    ]);
  }

  patchify(pixels: number, patches: number, B: number, R: number, patch: number): void {
    assert(R % patch === 0, `resolution ${R} divisible by patch ${patch}`);
    const G = R / patch;
    // values a thread converts: 8 (16-byte stores) where the patch allows, else what divides it
    const V = [8, 4, 2, 1].find((v) => patch % v === 0 && (v < 8 || R % 4 === 0)) as number;
    const groups = (B * G * G * 3 * patch * patch) / V;
    assert(groups < 2 ** 32, `patchify of ${B} images: fewer than 2^32 groups`);
    this.elementwise("patchify", groups, [p(pixels), p(patches), i(R), i(patch), i(V), u(groups)]);
  }

  embedLnFwd(a: {
    patchOut: number;
    cls: number;
    pos: number;
    gamma: number;
    beta: number;
    x0Save: number;
    mean: number;
    rstd: number;
    resid: number;
    R: number;
    N: number;
    D: number;
  }): void {
    assert(a.D % 8 === 0 && a.D <= MAX_ROW, `width ${a.D} (a multiple of 8) <= ${MAX_ROW}`);
    this.rows("embed_ln_fwd", a.R, [
      p(a.patchOut),
      p(a.cls),
      p(a.pos),
      p(a.gamma),
      p(a.beta),
      p(a.x0Save),
      p(a.mean),
      p(a.rstd),
      p(a.resid),
      i(a.R),
      i(a.N),
      i(a.D),
    ]);
  }

  /** resid += y + bias (y may be 0); save; out = LN(resid) (out may be 0). */
  residualLnFwd(a: {
    resid: number;
    y: number;
    bias: number;
    gamma: number;
    beta: number;
    out: number;
    mean: number;
    rstd: number;
    save: number;
    R: number;
    D: number;
  }): void {
    this.rows("residual_ln_fwd", a.R, [
      p(a.resid),
      p(a.y),
      p(a.bias),
      p(a.gamma),
      p(a.beta),
      p(a.out),
      p(a.mean),
      p(a.rstd),
      p(a.save),
      i(a.R),
      i(a.D),
    ]);
  }

  lnRecompute(
    x: number,
    mean: number,
    rstd: number,
    gamma: number,
    beta: number,
    out: number,
    R: number,
    D: number,
  ) {
    this.rows("ln_recompute", R, [p(x), p(mean), p(rstd), p(gamma), p(beta), p(out), i(R), i(D)]);
  }

  lnBwd(a: {
    dy: number;
    x: number;
    mean: number;
    rstd: number;
    gamma: number;
    dresid: number;
    dresBf: number;
    SR: number;
    R: number;
    D: number;
    accumulate: boolean;
  }): void {
    assert(a.SR % a.R === 0, `gradient rows ${a.SR} a multiple of saved rows ${a.R}`);
    this.rows(a.D <= 768 ? "ln_bwd_768" : "ln_bwd", a.R, [
      p(a.dy),
      p(a.x),
      p(a.mean),
      p(a.rstd),
      p(a.gamma),
      p(a.dresid),
      p(a.dresBf),
      i(a.SR),
      i(a.R),
      i(a.D),
      i(a.accumulate ? 1 : 0),
    ]);
  }

  embedLnBwd(a: {
    dresid: number;
    x0: number;
    mean: number;
    rstd: number;
    gamma: number;
    dPatch: number;
    SR: number;
    R: number;
    N: number;
    D: number;
  }): void {
    this.rows("embed_ln_bwd", a.SR, [
      p(a.dresid),
      p(a.x0),
      p(a.mean),
      p(a.rstd),
      p(a.gamma),
      p(a.dPatch),
      i(a.SR),
      i(a.R),
      i(a.N),
      i(a.D),
    ]);
  }

  /** *out (uint64, device) += a digest of the `words` 32-bit words at ptr (kernels/digest.cu). */
  bitsDigest(ptr: number, words: number, out: number): void {
    this.go("bits_digest", Math.min(1024, Math.ceil(words / 256)), 256, 0, [p(ptr), l(words), p(out)]);
  }

  /** out = lowp(in), n values. */
  lnBwdCopy(input: number, out: number, n: number): void {
    this.elementwise("f32_to_lowp", n, [p(input), p(out), l(n)]);
  }

  /**
   * Fused attention forward of B images, H heads of 64 over N tokens: q, k, v from the packed
   * in_proj output qkv [B * N, 3 * 64 H] (+ bias; 0 where the in_proj GEMM's epilogue added it),
   * o [B * N, 64 H] out, lse [B * H * N] (or 0).
   */
  attnFwd(qkv: number, bias: number, o: number, lse: number, B: number, N: number, H: number): void {
    assert(N <= MAX_TOKENS, `tokens ${N} <= ${MAX_TOKENS}`);
    const kernel = forwardKernel(N, this.cu.computeCapability);
    const args = [p(qkv), p(bias), p(o), p(lse), i(N), i(H), f(Math.LOG2E / 8)];
    // persistent kernels: one resident block an SM (two stages of tiles take most of its shared memory)
    const blocks = Math.min(B * H, this.cu.multiprocessors);
    if (kernel === "wgmma") {
      // two warpgroups
      this.go("attn_fwd_wgmma", blocks, 256, wgmmaForwardShared(N), [...args, i(B * H)]);
      return;
    }
    if (kernel === "pipe") {
      this.go("attn_fwd_pipe", blocks, 32 * Math.ceil(N / 16), pipelinedForwardShared(N), [
        ...args,
        i(B * H),
      ]);
      return;
    }
    const W = kernel;
    this.go(
      W === 16 ? "attn_fwd16" : W === 8 ? "attn_fwd8" : "attn_fwd",
      [Math.ceil(N / (16 * W)), B * H, 1],
      32 * W,
      attentionShared(W, N).fwd,
      args,
    );
  }

  /**
   * Fused attention backward for S signals: dO [S * B * N, 64 H] (rows s * R + r) against the saved
   * qkv, o and lse, into dqkv [S * B * N, 3 * 64 H].
   */
  attnBwd(a: AttentionBackward): void {
    assert(a.N <= MAX_TOKENS, `tokens ${a.N} <= ${MAX_TOKENS}`);
    const args = [...attentionPointers(a), i(a.N), i(a.H), i(a.B * a.N), f(Math.LOG2E / 8), f(1 / 8)];
    if (fusedBackward(a.N, a.S)) {
      // one block per (image, head) for every signal: q, k, v, o loaded once
      const threads = 32 * Math.ceil(a.N / 16);
      this.go("attn_bwd_fused", a.B * a.H, threads, fusedBackwardShared(a.N, a.S), [...args, i(a.S)]);
      return;
    }
    // the split kernels have no 16-warp variant: 8 where shared memory allows
    const W = Math.min(attentionWarps(a.N), 8);
    const grid: [number, number, number] = [Math.ceil(a.N / (16 * W)), a.B * a.H, a.S];
    const shared = attentionShared(W, a.N);
    this.go(W === 8 ? "attn_bwd_dq8" : "attn_bwd_dq", grid, 32 * W, shared.dq, args);
    this.go(W === 8 ? "attn_bwd_dkdv8" : "attn_bwd_dkdv", grid, 32 * W, shared.dkdv, args);
  }

  /**
   * Attention forward of the class token's query alone (the last block): q, k, v of B images from
   * qkv [B * N, 3 * 64 H] (+ bias) as attnFwd, o [B, 64 H] (one row an image) out, lse [B * H] (or 0).
   */
  attnClsFwd(qkv: number, bias: number, o: number, lse: number, B: number, N: number, H: number): void {
    assert(N <= MAX_TOKENS, `tokens ${N} <= ${MAX_TOKENS}`);
    this.go("attn_cls_fwd", Math.ceil((B * H) / CLS_WARPS), 32 * CLS_WARPS, 0, [
      p(qkv),
      p(bias),
      p(o),
      p(lse),
      i(B),
      i(N),
      i(H),
      f(Math.LOG2E / 8),
    ]);
  }

  /**
   * Its backward for S signals: dO [S * B, 64 H] (class rows, signal-major) against o [B, 64 H] and
   * lse [B * H], into dqkv [S * B * N, 3 * 64 H]: dk and dv of every row, dq of the class rows only
   * (the other rows' dq are zero and left unwritten: the engine's GEMMs read the class rows' alone).
   */
  attnClsBwd(a: AttentionBackward): void {
    assert(a.N <= MAX_TOKENS, `tokens ${a.N} <= ${MAX_TOKENS}`);
    this.go("attn_cls_bwd", Math.ceil((a.S * a.B * a.H) / CLS_WARPS), 32 * CLS_WARPS, 0, [
      ...attentionPointers(a),
      i(a.B),
      i(a.N),
      i(a.H),
      i(a.S),
      f(Math.LOG2E / 8),
      f(1 / 8),
    ]);
  }

  /** dst row r = src row r (fp32, D values) for r < rows; rows srcStride / dstStride floats apart. */
  copyRows(src: number, srcStride: number, dst: number, dstStride: number, rows: number, D: number): void {
    assert(D % 4 === 0 && srcStride % 4 === 0 && dstStride % 4 === 0, "rows of 16-byte units");
    this.elementwise("copy_rows", (rows * D) / 4, [
      p(src),
      l(srcStride),
      p(dst),
      l(dstStride),
      i(rows),
      i(D),
    ]);
  }

  /**
   * g = QuickGELU(bf16(u + bias)), total values of rows of F; g may be u (in place). u stays the
   * GEMM output: geluBwd adds the bias again.
   */
  biasGeluFwd(uPtr: number, bias: number, g: number, total: number, F: number): void {
    assertMlpRows(total, F);
    this.elementwise("bias_gelu_fwd", total / 8, [p(uPtr), p(bias), p(g), u(total / 8), i(F)]);
  }

  /**
   * d = d * QuickGELU'(bf16(u + bias)) for S (1 or 2) signals: d [S, rows, F], u [rows, F] of
   * total = rows * F values (u read once for both signals).
   */
  geluBwd(d: number, uPtr: number, bias: number, total: number, F: number, S: number): void {
    assertMlpRows(total, F);
    assert(S === 1 || S === 2, `gelu_bwd signals ${S} (1 or 2)`);
    this.elementwise("gelu_bwd", total / 8, [p(d), p(uPtr), p(bias), u(total / 8), i(F), i(S)]);
  }

  /**
   * c_fc with its bias and QuickGELU (kernels/mlp_gemm.cu): x = bf16(A B^T + bias) into xout (0:
   * not kept), out = QuickGELU(x), for A [M, K] and B [N, K] read through their CUtensorMaps at
   * device addresses mapA, mapB (boxes of MLP_BOX_ROWS rows x MLP_K_STEP).
   */
  mlpGemmGelu(g: {
    mapA: number;
    mapB: number;
    bias: number;
    xout: number;
    out: number;
    M: number;
    N: number;
    K: number;
  }): void {
    this.mlpGemm("mlp_gemm_gelu", g, Math.ceil(g.M / MLP_TILE_ROWS), [
      p(g.mapA),
      p(g.mapB),
      p(g.bias),
      p(g.xout),
      p(g.out),
      i(g.M),
      i(g.N),
      i(g.K),
    ]);
  }

  /**
   * c_proj's input gradient times QuickGELU' for both signals (kernels/mlp_gemm.cu): out [2 *
   * xRows, N] = bf16(A B^T * QuickGELU'(x)), A [2 * xRows, K] the two signals' residual gradients,
   * B [N, K] c_proj's weight transposed, x [xRows, N] the fused c_fc's kept x, each read through
   * its CUtensorMap (boxes of MLP_BOX_ROWS rows x MLP_K_STEP).
   */
  mlpGemmDgelu(g: {
    mapA: number;
    mapB: number;
    mapX: number;
    out: number;
    xRows: number;
    N: number;
    K: number;
  }): void {
    this.mlpGemm("mlp_gemm_dgelu", g, 2 * Math.ceil(g.xRows / MLP_TILE_ROWS), [
      p(g.mapA),
      p(g.mapB),
      p(g.mapX),
      p(g.out),
      i(g.xRows),
      i(g.N),
      i(g.K),
    ]);
  }

  /** Persistent blocks over the rowTiles x N / 256 output tiles of an MLP GEMM. */
  private mlpGemm(name: KernelName, g: { N: number; K: number }, rowTiles: number, args: KernelArg[]): void {
    assert(
      g.N % MLP_TILE_COLS === 0 && g.K % MLP_K_STEP === 0,
      `MLP GEMM N ${g.N} a multiple of ${MLP_TILE_COLS}, K ${g.K} of ${MLP_K_STEP}`,
    );
    const tiles = rowTiles * (g.N / MLP_TILE_COLS);
    this.go(name, Math.min(tiles, this.cu.multiprocessors), MLP_THREADS, MLP_SHARED, args);
  }

  headForward(a: {
    resid: number;
    N: number;
    D: number;
    E: number;
    C: number;
    lnw: number;
    lnb: number;
    proj: number;
    text: number;
    scale: number;
    features: number;
    logits: number;
    B: number;
  }): void {
    const shared = (a.D + a.E + a.C) * 4;
    this.go("head_forward", a.B, HEAD_THREADS, shared, [
      p(a.resid),
      i(a.N),
      i(a.D),
      i(a.E),
      i(a.C),
      p(a.lnw),
      p(a.lnb),
      p(a.proj),
      p(a.text),
      f(a.scale),
      p(a.features),
      p(a.logits),
    ]);
  }

  /** Dynamic shared memory of head_step in bytes. */
  static headStepShared(D: number, E: number, C: number): number {
    return (4 * D + 4 * E + 4 * C) * 4;
  }

  prepareHead(D: number, E: number, C: number): void {
    const bytes = Kernels.headStepShared(D, E, C);
    if (bytes > 48 * 1024) {
      this.cu.setMaxDynamicShared(this.fn.get("head_step") as number, bytes);
      this.cu.setMaxDynamicShared(this.fn.get("head_forward") as number, bytes);
    }
  }

  headStep(a: {
    residS: number;
    residT: number;
    N: number;
    D: number;
    E: number;
    C: number;
    lnw: number;
    lnb: number;
    proj: number;
    text: number;
    scale: number;
    labels: number;
    B: number;
    T: number;
    alpha: number;
    /** Both losses' factor (precision.ts lossScale; 1 in bf16). */
    lossScale: number;
    dresid: number;
    stats: number;
    logits: number;
  }): void {
    this.go("head_step", a.B, HEAD_THREADS, Kernels.headStepShared(a.D, a.E, a.C), [
      p(a.residS),
      p(a.residT),
      i(a.N),
      i(a.D),
      i(a.E),
      i(a.C),
      p(a.lnw),
      p(a.lnb),
      p(a.proj),
      p(a.text),
      f(a.scale),
      p(a.labels),
      i(a.B),
      f(a.T),
      f(a.alpha),
      f(a.lossScale),
      p(a.dresid),
      p(a.stats),
      p(a.logits),
    ]);
  }

  /** Blocks mask_sumsq uses for `n` scores (at most SUMSQ_BLOCKS). */
  static sumsqBlocks(n: number): number {
    return Math.min(SUMSQ_BLOCKS, Math.ceil(n / 256));
  }

  maskSumsq(S: number, n: number, partials: number, slot: number): void {
    this.go("mask_sumsq", Kernels.sumsqBlocks(n), 256, 0, [p(S), l(n), p(partials), i(slot)]);
  }

  maskNorms(partials: number, blocks: number, norms: number, tensors: number): void {
    this.go("mask_norms", tensors, SUMSQ_BLOCKS, 0, [p(partials), p(blocks), p(norms)]);
  }

  maskApply(S: number, W: number, Wp: number, n: number, threshold: number): void {
    this.elementwise("mask_apply", n, [p(S), p(W), p(Wp), l(n), f(threshold)]);
  }

  maskUpdate(a: {
    S: number;
    W: number;
    Wp: number;
    grads: number;
    /** 1 / head_step's lossScale. */
    gradScale: number;
    m: number;
    v: number;
    n: number;
    tensorIndex: number;
    norms: number;
    slot: number;
    params: number;
    uniforms: number;
    seed: number;
    regWeight: number;
    threshold: number;
    lambda: number;
    beta1: number;
    beta2: number;
    eps: number;
  }): void {
    this.elementwise("mask_update", Math.ceil(a.n / 4), [
      p(a.S),
      p(a.W),
      p(a.Wp),
      p(a.grads),
      f(a.gradScale),
      p(a.m),
      p(a.v),
      l(a.n),
      i(a.tensorIndex),
      p(a.norms),
      i(a.slot),
      p(a.params),
      p(a.uniforms),
      u(a.seed),
      f(a.regWeight),
      f(a.threshold),
      f(a.lambda),
      f(a.beta1),
      f(a.beta2),
      f(a.eps),
    ]);
  }

  dispose(): void {
    this.cu.unloadModule(this.module);
  }
}
