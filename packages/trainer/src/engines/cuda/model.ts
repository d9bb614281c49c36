/**
 * The ViT image tower on the GPU: device buffers (one arena) and the launch sequences of the
 * forward (student keeping activations, or teacher/eval keeping nothing), the two-signal backward
 * and the mask update. docs/cuda-engine.md sections 1-3 give the plan followed here.
 *
 * Shapes: B images, N = G*G + 1 tokens, R = B*N rows, D width, H = D/64 heads, F = 4D, E embed,
 * C classes, K = 3*p*p patch length. Signal s = 0 (ce) and 1 (kl) stacked: [2R, width].
 *
 * The last block runs for the class tokens alone after its keys and values: the head reads the
 * class token only, so the other rows' attention outputs, out_proj, LN2 and MLP there feed
 * nothing. Its attention takes one query per (image, head) (kernels/class_attention.cu) and the
 * rest of it works on B compact rows: the class rows of the residual stream are gathered into
 * residCS / residCT (the head's input) and their gradients (dresidC) scattered back before its LN1.
 *
 * GEMM epilogues (where cuBLASLt offers them, `epilogues`): in_proj's bias is added by its GEMM
 * (a bf16 copy: q, k, v = bf16(x W^T + bf16(b)) instead of bf16(bf16(x W^T) + b); the attention
 * kernels get no bias), and out_proj and c_proj add their bias and their output straight into the
 * fp32 residual stream (C = resid, beta = 1): no bf16 rounding of the branch, and the LayerNorm
 * pass after them reads the stream alone.
 *
 * The MLP on Hopper (kernels/mlp_gemm.cu): c_fc's GEMM adds the bias and applies QuickGELU in its
 * epilogue (`fusedMlp`), so bias_gelu_fwd's pass is gone, and the student keeps x = bf16(h W^T +
 * b); the backward's dg GEMM (both signals, c_proj's weight uploaded transposed) multiplies by
 * QuickGELU'(x) in its own (`fusedMlpBackward`), reading x through a tensor map, so gelu_bwd's
 * pass is gone too. With UNMASK_MLP_GEMM=forward the backward runs cuBLAS + gelu_bwd on the kept x
 * with a zero bias; off Hopper (or UNMASK_MLP_GEMM=cublas) cuBLAS runs c_fc and bias_gelu_fwd the
 * activation, and the student keeps c_fc's output before its bias.
 *
 * Several GPUs (README "Several GPUs"): with a `reducer`, the backward hands each masked
 * tensor's [2, numel] gradient over right after the GEMM that writes it (tensorReady), and the
 * update waits for the all-reduced gradients (wait) before its kernels. Without one (a single
 * GPU) both calls are skipped and the launch sequence is unchanged.
 */
import { CLIP_MEAN, CLIP_STD, UnmaskError } from "@unmask/clip";
import type { GradientReducer } from "../../distributed/gradient-reducer.js";
import type { EngineModel, RmtHyper } from "../../engine.js";
import { ArenaPlan, type Region } from "./arena.js";
import { CUBLAS_WORKSPACE_BYTES, type Cublas, type GemmCall } from "./cublas.js";
import { type CudaDriver, TENSOR_MAP_BYTES } from "./driver.js";
import {
  fusedMlpBackward,
  fusedMlpSupported,
  Kernels,
  MLP_BOX_ROWS,
  MLP_K_STEP,
  SUMSQ_BLOCKS,
} from "./kernels.js";
import { DEFAULT_PRECISION, lossScale, type Precision, toLowp } from "./precision.js";

const BF = 2;
const F4 = 4;
const HEAD_DIM = 64;

export interface Dims {
  B: number;
  N: number;
  D: number;
  H: number;
  F: number;
  E: number;
  C: number;
  K: number;
  P: number;
  L: number;
  patch: number;
  res: number;
}

export interface MaskedTensor {
  name: string;
  index: number;
  numel: number;
  shape: number[];
  W: Region; // fp32 original
  S: Region;
  m: Region;
  v: Region;
  grads: Region; // fp32 [2, numel]
}

interface BlockWeights {
  ln1w: Region;
  ln1b: Region;
  inW: Region; // bf16 teacher
  inB: Region;
  inBh: Region; // bf16 copy of inB, for the in_proj GEMM's epilogue
  outW: Region;
  outB: Region;
  ln2w: Region;
  ln2b: Region;
  fcW: Region;
  fcB: Region;
  projW: Region;
  projB: Region;
  /** c_fc's weight's TMA tensor map, for the fused c_fc (fusedMlp). */
  fcMap?: Region;
  /** The fused dg GEMM's (fusedMlpBackward): c_proj's weight transposed, bf16 [F, D], and its map. */
  projT?: Region;
  projTMap?: Region;
  inWp: Region; // student W' (= inW when not masked)
  outWp: Region;
  inMask?: MaskedTensor;
  outMask?: MaskedTensor;
}

/** Which adds run in cuBLASLt epilogues instead of in kernels of ours (TowerModel doc). */
export interface Epilogues {
  /** in_proj's bias, into qkv. */
  qkvBias: boolean;
  /** out_proj's bias and the residual add, into the fp32 residual stream. */
  attnResidual: boolean;
  /** c_proj's bias and the residual add, into the fp32 residual stream. */
  mlpResidual: boolean;
}

const EPILOGUE_NAMES = { qkv: "qkvBias", attn: "attnResidual", mlp: "mlpResidual" } as const;

/**
 * The epilogues UNMASK_GEMM_EPILOGUES asks for (benches): a comma list of qkv, attn and mlp,
 * "none" for none; unset, every one.
 */
export function epilogueRequest(value: string | undefined): Epilogues {
  const names = (value ?? "qkv,attn,mlp").split(",");
  const wanted: Epilogues = { qkvBias: false, attnResidual: false, mlpResidual: false };
  for (const [name, key] of Object.entries(EPILOGUE_NAMES)) wanted[key] = names.includes(name);
  return wanted;
}

/** What the backward reads of block l; the last block's rows after its attention are the B class rows. */
interface BlockActs {
  x: Region; // bf16 [R, D] LN1 input
  mean1: Region;
  rstd1: Region;
  qkv: Region; // bf16 [R, 3D] in_proj output, with its bias where epilogues.qkvBias (else the attention kernels add it)
  lse: Region; // fp32 [B*H*N] attention row log2-sum-exp2 (probabilities are recomputed); last: [B*H]
  o: Region; // bf16 [R, D]; last: [B, D]
  xmid: Region; // bf16 [R, D]; last: [B, D]
  mean2: Region;
  rstd2: Region;
  // bf16 [R, F], last: [B, F]: with fusedMlp the activation's input x = bf16(c_fc + bias), else
  // c_fc's output before its bias (gelu_bwd adds the bias again, as bias_gelu_fwd did)
  u: Region;
  /** u's TMA tensor map, for the fused dg GEMM (fusedMlpBackward). */
  uMap?: Region;
}

export class TowerModel {
  readonly dims: Dims;
  readonly arena = new ArenaPlan();
  readonly masked: MaskedTensor[] = [];
  private readonly blocks: BlockWeights[] = [];
  private readonly acts: BlockActs[] = [];
  private readonly r: Record<string, Region> = {};
  private convMask?: MaskedTensor;
  private convWp!: Region;
  private readonly uploads: (() => void)[] = [];
  /** Set by the engine when it is one rank of several (EngineOptions.distributed). */
  reducer?: GradientReducer;
  /** Set by the engine (chooseEpilogues); none until then. */
  epilogues: Epilogues = { qkvBias: false, attnResidual: false, mlpResidual: false };
  /** c_fc's GEMM with QuickGELU in its epilogue (TowerModel doc); fixed at construction. */
  readonly fusedMlp: boolean;
  /** The backward's dg GEMM with QuickGELU' in its epilogue (needs fusedMlp's kept x). */
  readonly fusedMlpBackward: boolean;
  /**
   * The factor of both losses' gradients (precision.ts): the masked tensors' gradient buffers hold
   * lossScale x dW', which the update divides out.
   */
  readonly lossScale: number;

  constructor(
    private readonly cu: CudaDriver,
    private readonly k: Kernels,
    private readonly blas: Cublas,
    private readonly stream: number,
    model: EngineModel,
    maxBatch: number,
    private readonly hyper: RmtHyper,
    private readonly seed: number,
    /** The 16-bit type of weights, activations and GEMM operands (the fatbin the kernels match). */
    private readonly precision: Precision = DEFAULT_PRECISION,
  ) {
    const c = model.config;
    if (c.architecture !== "vit" || !c.visionPatchSize)
      throw new UnmaskError("UNSUPPORTED_MODEL", "the cuda engine trains ViT image towers only", {
        subject: "config",
      });
    const L = c.visionLayers as number;
    const D = c.visionWidth;
    const patch = c.visionPatchSize;
    const res = c.imageResolution;
    const G = res / patch;
    const C = model.textFeatures.shape[0];
    this.dims = {
      B: maxBatch,
      N: G * G + 1,
      D,
      H: D / HEAD_DIM,
      F: 4 * D,
      E: c.embedDim,
      C,
      K: 3 * patch * patch,
      P: G * G,
      L,
      patch,
      res,
    };
    if (D % HEAD_DIM !== 0)
      throw new UnmaskError("UNSUPPORTED_MODEL", `vision width ${D} is not a multiple of 64`, {
        subject: "config",
      });
    this.lossScale = lossScale(precision, maxBatch);
    this.fusedMlp = fusedMlpSupported(cu, D, 4 * D);
    this.fusedMlpBackward = this.fusedMlp && fusedMlpBackward();
    this.plan(model);
    this.arena.allocate(cu);
    for (const up of this.uploads) up();
    this.uploads.length = 0;
    for (const m of this.masked) {
      cu.zero(m.m.ptr, m.m.bytes);
      cu.zero(m.v.ptr, m.v.bytes);
    }
  }

  // ------------------------------------------------------------------ buffers

  /** The model's tensor `name`. @throws UnmaskError MISSING_TENSOR */
  private tensorOf(model: EngineModel, name: string) {
    const t = model.weights.get(name);
    if (!t) throw new UnmaskError("MISSING_TENSOR", `model lacks ${name}`, { subject: name });
    return t;
  }

  private weight(model: EngineModel, name: string, dtype: "f32" | "lowp"): Region {
    const t = this.tensorOf(model, name);
    const region = this.arena.take(name, t.data.length * (dtype === "f32" ? F4 : BF));
    this.uploads.push(() => {
      if (dtype === "f32") this.cu.upload(region.ptr, t.data);
      else this.cu.upload(region.ptr, toLowp(this.precision, t.data));
    });
    return region;
  }

  /**
   * A [rows, cols] weight uploaded transposed, as bf16 [cols, rows], with its tensor map: c_proj's,
   * the fused dg GEMM's B operand.
   */
  private weightTransposed(model: EngineModel, name: string): { projT: Region; projTMap: Region } {
    const t = this.tensorOf(model, name);
    const [rows, cols] = t.shape;
    const projT = this.arena.take(`${name}^T`, t.data.length * BF);
    this.uploads.push(() => {
      const transposed = new Float32Array(t.data.length);
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) transposed[c * rows + r] = t.data[r * cols + c];
      this.cu.upload(projT.ptr, toLowp(this.precision, transposed));
    });
    return { projT, projTMap: this.tensorMap(projT, cols, rows) };
  }

  /**
   * The TMA tensor map (kernels/mlp_gemm.cu) of `matrix`, bf16 [rows, cols], read in the MLP
   * kernels' boxes of MLP_BOX_ROWS x MLP_K_STEP: encoded once the arena has its address.
   */
  private tensorMap(matrix: Region, rows: number, cols: number): Region {
    const map = this.arena.take(`${matrix.name}.map`, TENSOR_MAP_BYTES);
    this.uploads.push(() =>
      this.cu.upload(
        map.ptr,
        this.cu.encodeTensorMap(matrix.ptr, rows, cols, cols, MLP_BOX_ROWS, MLP_K_STEP, this.precision),
      ),
    );
    return map;
  }

  private maskFor(model: EngineModel, name: string): MaskedTensor | undefined {
    const index = model.maskedTensors.indexOf(name);
    if (index < 0) return undefined;
    const t = this.tensorOf(model, name);
    const n = t.data.length;
    const m: MaskedTensor = {
      name,
      index,
      numel: n,
      shape: t.shape,
      W: this.weight(model, name, "f32"),
      S: this.arena.take(`${name}.S`, n * F4),
      m: this.arena.take(`${name}.m`, n * F4),
      v: this.arena.take(`${name}.v`, n * F4),
      grads: this.arena.take(`${name}.grads`, 2 * n * F4),
    };
    this.masked[index] = m;
    return m;
  }

  private plan(model: EngineModel): void {
    const { B, N, D, H, F, E, C, K, P, L } = this.dims;
    const R = B * N;
    const a = this.arena;
    const pre = "visual.";
    const known = new Set<string>([`${pre}conv1.weight`]);
    for (let l = 0; l < L; l++)
      known
        .add(`${pre}transformer.resblocks.${l}.attn.in_proj_weight`)
        .add(`${pre}transformer.resblocks.${l}.attn.out_proj.weight`);
    for (const name of model.maskedTensors)
      if (!known.has(name))
        throw new UnmaskError(
          "UNSUPPORTED_MASK",
          `the cuda engine masks conv1 and attention weights only, not ${name}`,
          {
            subject: name,
          },
        );
    // weights
    this.r.conv = this.weight(model, `${pre}conv1.weight`, "lowp");
    this.convMask = this.maskFor(model, `${pre}conv1.weight`);
    this.convWp = this.convMask ? a.take("conv1.Wp", D * K * BF) : this.r.conv;
    this.r.cls = this.weight(model, `${pre}class_embedding`, "f32");
    this.r.pos = this.weight(model, `${pre}positional_embedding`, "f32");
    this.r.lnPreW = this.weight(model, `${pre}ln_pre.weight`, "f32");
    this.r.lnPreB = this.weight(model, `${pre}ln_pre.bias`, "f32");
    this.r.lnPostW = this.weight(model, `${pre}ln_post.weight`, "f32");
    this.r.lnPostB = this.weight(model, `${pre}ln_post.bias`, "f32");
    this.r.proj = this.weight(model, `${pre}proj`, "f32");
    const text = a.take("text", C * E * F4);
    this.uploads.push(() => this.cu.upload(text.ptr, model.textFeatures.data));
    this.r.text = text;
    for (let l = 0; l < L; l++) {
      const b = `${pre}transformer.resblocks.${l}.`;
      const inMask = this.maskFor(model, `${b}attn.in_proj_weight`);
      const outMask = this.maskFor(model, `${b}attn.out_proj.weight`);
      const inW = this.weight(model, `${b}attn.in_proj_weight`, "lowp");
      const outW = this.weight(model, `${b}attn.out_proj.weight`, "lowp");
      const fcW = this.weight(model, `${b}mlp.c_fc.weight`, "lowp");
      this.blocks.push({
        ln1w: this.weight(model, `${b}ln_1.weight`, "f32"),
        ln1b: this.weight(model, `${b}ln_1.bias`, "f32"),
        inW,
        inB: this.weight(model, `${b}attn.in_proj_bias`, "f32"),
        inBh: this.weight(model, `${b}attn.in_proj_bias`, "lowp"),
        outW,
        outB: this.weight(model, `${b}attn.out_proj.bias`, "f32"),
        ln2w: this.weight(model, `${b}ln_2.weight`, "f32"),
        ln2b: this.weight(model, `${b}ln_2.bias`, "f32"),
        fcW,
        fcB: this.weight(model, `${b}mlp.c_fc.bias`, "f32"),
        projW: this.weight(model, `${b}mlp.c_proj.weight`, "lowp"),
        projB: this.weight(model, `${b}mlp.c_proj.bias`, "f32"),
        ...(this.fusedMlp ? { fcMap: this.tensorMap(fcW, 4 * D, D) } : {}),
        ...(this.fusedMlpBackward ? this.weightTransposed(model, `${b}mlp.c_proj.weight`) : {}),
        inWp: inMask ? a.take(`${b}in.Wp`, 3 * D * D * BF) : inW,
        outWp: outMask ? a.take(`${b}out.Wp`, D * D * BF) : outW,
        inMask,
        outMask,
      });
    }
    for (let t = 0; t < model.maskedTensors.length; t++)
      if (!this.masked[t]) throw new UnmaskError("MISSING_TENSOR", `model lacks ${model.maskedTensors[t]}`);
    // saved student activations (the last block's past its attention: class rows only)
    for (let l = 0; l < L; l++) {
      const rows = l === L - 1 ? B : R;
      this.acts.push({
        x: a.take(`act${l}.x`, R * D * BF),
        mean1: a.take(`act${l}.mean1`, R * F4),
        rstd1: a.take(`act${l}.rstd1`, R * F4),
        qkv: a.take(`act${l}.qkv`, R * 3 * D * BF),
        lse: a.take(`act${l}.lse`, (l === L - 1 ? B * H : B * H * N) * F4),
        o: a.take(`act${l}.o`, rows * D * BF),
        xmid: a.take(`act${l}.xmid`, rows * D * BF),
        mean2: a.take(`act${l}.mean2`, rows * F4),
        rstd2: a.take(`act${l}.rstd2`, rows * F4),
        u: a.take(`act${l}.u`, rows * F * BF),
      });
      const act = this.acts[l];
      if (this.fusedMlpBackward) act.uMap = this.tensorMap(act.u, rows, F);
    }
    const s = (name: string, bytes: number) => {
      this.r[name] = a.take(name, bytes);
    };
    s("patches", B * P * K * BF);
    s("x0", R * D * BF);
    s("mean0", R * F4);
    s("rstd0", R * F4);
    s("residS", R * D * F4);
    s("h", R * D * BF);
    s("dresid", 2 * R * D * F4);
    s("dresBf", 2 * R * D * BF);
    // the class rows through the last block: the residual stream of each forward (the head's
    // input) and its gradient for both signals
    s("residCS", B * D * F4);
    s("residCT", B * D * F4);
    s("dresidC", 2 * B * D * F4);
    s("dresBfC", 2 * B * D * BF);
    if (this.fusedMlp) {
      // the fused c_fc's A operand (LN2's output)
      this.r["h.map"] = this.tensorMap(this.r.h, R, D);
    }
    if (this.fusedMlpBackward) {
      // the fused dg GEMM's A operands: the residual gradients of both signals
      this.r["dresBf.map"] = this.tensorMap(this.r.dresBf, 2 * R, D);
      this.r["dresBfC.map"] = this.tensorMap(this.r.dresBfC, 2 * B, D);
    } else if (this.fusedMlp) {
      // the zero bias gelu_bwd adds to the fused c_fc's x
      const zero = a.take("zeroBias", this.dims.F * F4);
      this.uploads.push(() => this.cu.zero(zero.ptr, zero.bytes));
      this.r.zeroBias = zero;
    }
    // forward-only scratch, backward-only scratch and the input pixels share their bytes: the
    // pixels are read by patchify before anything else of the step is written, and the teacher's
    // residual stream is dead once the head has run
    a.beginUnion();
    s("residT", R * D * F4);
    s("patchOut", B * P * D * BF);
    s("qkv", R * 3 * D * BF);
    s("tmean", R * F4);
    s("trstd", R * F4);
    s("to", R * D * BF);
    s("y", R * D * BF);
    s("g", R * F * BF);
    a.alternative();
    s("pixels", B * 3 * this.dims.res * this.dims.res * F4);
    a.alternative();
    // the backward runs the MLP and the attention for both signals at once
    s("dF", Math.max(2 * R * F, this.convMask ? 2 * B * P * D : 0) * BF); // also dPatch, after the blocks
    s("dD", 2 * R * D * BF);
    s("dqkv", 2 * R * 3 * D * BF);
    a.endUnion();
    s("stats", B * 4 * F4);
    s("logits", 2 * B * C * F4);
    s("features", B * E * F4);
    s("norms", Math.max(1, this.masked.length) * F4);
    s("partials", Math.max(1, this.masked.length) * SUMSQ_BLOCKS * F4);
    const sumsqBlocks = Int32Array.from(this.masked, (m) => Kernels.sumsqBlocks(m.numel));
    s("sumsqBlocks", Math.max(1, sumsqBlocks.length) * 4);
    this.uploads.push(() => this.cu.upload(this.r.sumsqBlocks.ptr, sumsqBlocks));
    s("params", 16);
    s("labels", B * 4);
    s("indices", B * 4);
    s("boxes", B * 4 * F4);
    s("flips", B);
    s("workspace", CUBLAS_WORKSPACE_BYTES);
  }

  get workspace(): number {
    return this.r.workspace.ptr;
  }

  ptr(name: string): number {
    return this.r[name].ptr;
  }

  /**
   * The epilogues `wanted` that cuBLASLt runs (`supported` asks it, for this model's calls at the
   * largest batch): a bf16 qkv with a bf16 bias, an fp32 residual stream accumulated with an fp32 one.
   */
  chooseEpilogues(supported: (c: GemmCall) => boolean, wanted: Epilogues): void {
    const { B, N, D } = this.dims;
    const R = B * N;
    const w = this.blocks[0];
    const qkv = this.inProjCall(w, w.inW.ptr, this.ptr("h"), this.ptr("qkv"), 0, 3 * D, R, 1, true);
    const residual = this.branchCall(R, this.ptr("to"), w.outW.ptr, D, w.outB.ptr, this.ptr("residS"), true);
    const accumulates = supported(residual);
    this.epilogues = {
      qkvBias: wanted.qkvBias && supported(qkv),
      attnResidual: wanted.attnResidual && accumulates,
      mlpResidual: wanted.mlpResidual && accumulates,
    };
  }

  /** W' = [S > t] * W for every masked tensor. */
  applyMasks(): void {
    for (const m of this.masked)
      this.k.maskApply(m.S.ptr, m.W.ptr, this.studentWeight(m), m.numel, this.hyper.threshold);
  }

  private studentWeight(m: MaskedTensor): number {
    if (m === this.convMask) return this.convWp.ptr;
    for (const b of this.blocks) {
      if (b.inMask === m) return b.inWp.ptr;
      if (b.outMask === m) return b.outWp.ptr;
    }
    throw new Error(`no student weight for ${m.name}`);
  }

  // ------------------------------------------------------------------ forward

  /**
   * Forward of the tower on `B` images already patchified in `patches`: the student keeps what the
   * backward needs; the teacher (and evaluation) keep nothing. Leaves the class rows of the final
   * residual stream in residCS (student) or residCT, [B, D].
   */
  forward(B: number, mode: "student" | "teacher" | "eval-student"): void {
    const { N, D, H, F, K, P, L } = this.dims;
    const R = B * N;
    const keep = mode === "student";
    const studentWeights = mode !== "teacher";
    const resid = keep ? this.ptr("residS") : this.ptr("residT");
    const residC = keep ? this.ptr("residCS") : this.ptr("residCT");
    const gemm = this.blas;
    gemm.gemm({
      M: B * P,
      N: D,
      K,
      A: { ptr: this.ptr("patches"), ld: K },
      B: { ptr: studentWeights ? this.convWp.ptr : this.ptr("conv"), ld: K },
      transB: true,
      C: { ptr: this.ptr("patchOut"), ld: D },
    });
    this.k.embedLnFwd({
      patchOut: this.ptr("patchOut"),
      cls: this.ptr("cls"),
      pos: this.ptr("pos"),
      gamma: this.ptr("lnPreW"),
      beta: this.ptr("lnPreB"),
      x0Save: keep ? this.ptr("x0") : 0,
      mean: keep ? this.ptr("mean0") : this.ptr("tmean"),
      rstd: keep ? this.ptr("rstd0") : this.ptr("trstd"),
      resid,
      R,
      N,
      D,
    });
    const h = this.ptr("h");
    const first = this.blocks[0];
    this.k.residualLnFwd({
      resid,
      y: 0,
      bias: 0,
      gamma: first.ln1w.ptr,
      beta: first.ln1b.ptr,
      out: h,
      mean: keep ? this.acts[0].mean1.ptr : this.ptr("tmean"),
      rstd: keep ? this.acts[0].rstd1.ptr : this.ptr("trstd"),
      save: keep ? this.acts[0].x.ptr : 0,
      R,
      D,
    });
    const { qkvBias, attnResidual, mlpResidual } = this.epilogues;
    for (let l = 0; l < L; l++) {
      const w = this.blocks[l];
      const act = this.acts[l];
      const last = l === L - 1;
      const qkv = keep ? act.qkv.ptr : this.ptr("qkv");
      const o = keep ? act.o.ptr : this.ptr("to");
      const u = keep ? act.u.ptr : this.ptr("g"); // the teacher activates in place
      const inW = studentWeights ? w.inWp.ptr : w.inW.ptr;
      const inProj = (first: number, cols: number, rows: number, rowStep: number) =>
        gemm.gemm(this.inProjCall(w, inW, h, qkv, first, cols, rows, rowStep, qkvBias));
      if (last) {
        inProj(D, 2 * D, R, 1); // keys and values of every row
        inProj(0, D, B, N); // the query of the class rows alone (h's rows N * D apart)
      } else inProj(0, 3 * D, R, 1);
      const attentionBias = qkvBias ? 0 : w.inB.ptr;
      if (last) this.k.attnClsFwd(qkv, attentionBias, o, keep ? act.lse.ptr : 0, B, N, H);
      else this.k.attnFwd(qkv, attentionBias, o, keep ? act.lse.ptr : 0, B, N, H);
      // the last block goes on with the class rows alone, gathered out of the residual stream
      const rows = last ? B : R;
      const res = last ? residC : resid;
      if (last) this.k.copyRows(resid, N * D, residC, D, B, D);
      const outW = studentWeights ? w.outWp.ptr : w.outW.ptr;
      gemm.gemm(this.branchCall(rows, o, outW, D, w.outB.ptr, res, attnResidual));
      this.k.residualLnFwd({
        resid: res,
        y: attnResidual ? 0 : this.ptr("y"),
        bias: attnResidual ? 0 : w.outB.ptr,
        gamma: w.ln2w.ptr,
        beta: w.ln2b.ptr,
        out: h,
        mean: keep ? act.mean2.ptr : this.ptr("tmean"),
        rstd: keep ? act.rstd2.ptr : this.ptr("trstd"),
        save: keep ? act.xmid.ptr : 0,
        R: rows,
        D,
      });
      if (w.fcMap) {
        this.k.mlpGemmGelu({
          mapA: this.ptr("h.map"),
          mapB: w.fcMap.ptr,
          bias: w.fcB.ptr,
          xout: keep ? act.u.ptr : 0,
          out: this.ptr("g"),
          M: rows,
          N: F,
          K: D,
        });
      } else {
        gemm.gemm({
          M: rows,
          N: F,
          K: D,
          A: { ptr: h, ld: D },
          B: { ptr: w.fcW.ptr, ld: D },
          transB: true,
          C: { ptr: u, ld: F },
        });
        this.k.biasGeluFwd(u, w.fcB.ptr, this.ptr("g"), rows * F, F);
      }
      gemm.gemm(this.branchCall(rows, this.ptr("g"), w.projW.ptr, F, w.projB.ptr, res, mlpResidual));
      const next = l + 1 < L ? this.blocks[l + 1] : undefined;
      if (!next && mlpResidual) break; // the epilogue did all of the last residual add
      this.k.residualLnFwd({
        resid: res,
        y: mlpResidual ? 0 : this.ptr("y"),
        bias: mlpResidual ? 0 : w.projB.ptr,
        gamma: next ? next.ln1w.ptr : 0,
        beta: next ? next.ln1b.ptr : 0,
        out: next ? h : 0,
        mean: next ? (keep ? this.acts[l + 1].mean1.ptr : this.ptr("tmean")) : 0,
        rstd: next ? (keep ? this.acts[l + 1].rstd1.ptr : this.ptr("trstd")) : 0,
        save: next && keep ? this.acts[l + 1].x.ptr : 0,
        R: rows,
        D,
      });
    }
  }

  /**
   * in_proj's output columns [first, first + cols) for `rows` rows of h, `rowStep` rows apart (1:
   * every row; N: the class rows), into qkv; with its bias (the bf16 copy) in the epilogue when
   * `withBias`, else the attention kernels add it.
   */
  private inProjCall(
    w: BlockWeights,
    inW: number,
    h: number,
    qkv: number,
    first: number,
    cols: number,
    rows: number,
    rowStep: number,
    withBias: boolean,
  ): GemmCall {
    const D = this.dims.D;
    return {
      M: rows,
      N: cols,
      K: D,
      A: { ptr: h, ld: rowStep * D },
      B: { ptr: inW + first * D * BF, ld: D },
      transB: true,
      C: { ptr: qkv + first * BF, ld: rowStep * 3 * D },
      ...(withBias ? { bias: w.inBh.ptr + first * BF, biasType: "lowp" as const } : {}),
    };
  }

  /**
   * A block branch's output layer, x [rows, K] times W^T [K, D] plus bias: into the fp32 residual
   * stream `resid` by the GEMM's epilogue (`fused`), else into the bf16 scratch y that
   * residual_ln_fwd adds.
   */
  private branchCall(
    rows: number,
    x: number,
    W: number,
    K: number,
    bias: number,
    resid: number,
    fused: boolean,
  ): GemmCall {
    const D = this.dims.D;
    return {
      M: rows,
      N: D,
      K,
      A: { ptr: x, ld: K },
      B: { ptr: W, ld: K },
      transB: true,
      C: fused ? { ptr: resid, ld: D, type: "f32" } : { ptr: this.ptr("y"), ld: D },
      beta: fused ? 1 : 0,
      bias: fused ? bias : undefined,
    };
  }

  // ------------------------------------------------------------------ backward

  /**
   * Both loss signals from dresidC (the class rows' gradients, filled by head_step; dresid zero)
   * down to the masked weights' gradients.
   */
  backward(B: number): void {
    const { N, D, H, F, K, P, L } = this.dims;
    const R = B * N;
    const gemm = this.blas;
    const dD = this.ptr("dD");
    const dF = this.ptr("dF");
    // bf16 copy of the head's gradient for the first GEMM (ln_bwd keeps it current afterwards)
    this.k.lnBwdCopy(this.ptr("dresidC"), this.ptr("dresBfC"), 2 * B * D);
    for (let l = L - 1; l >= 0; l--) {
      const w = this.blocks[l];
      const act = this.acts[l];
      // down to its attention the last block has the class rows alone (forward)
      const last = l === L - 1;
      const rows = last ? B : R;
      const dresid = last ? this.ptr("dresidC") : this.ptr("dresid");
      const dresBf = last ? this.ptr("dresBfC") : this.ptr("dresBf");
      // MLP for both signals: dg = dres @ Wproj, du = dg * gelu'(u), dln2 = du @ Wfc, LN2 backward
      // onto the residual
      if (w.projTMap && act.uMap) {
        this.k.mlpGemmDgelu({
          mapA: this.ptr(last ? "dresBfC.map" : "dresBf.map"),
          mapB: w.projTMap.ptr,
          mapX: act.uMap.ptr,
          out: dF,
          xRows: rows,
          N: F,
          K: D,
        });
      } else {
        gemm.gemm({
          M: 2 * rows,
          N: F,
          K: D,
          A: { ptr: dresBf, ld: D },
          B: { ptr: w.projW.ptr, ld: F },
          C: { ptr: dF, ld: F },
        });
        // the fused c_fc kept x with its bias already added
        this.k.geluBwd(dF, act.u.ptr, this.fusedMlp ? this.ptr("zeroBias") : w.fcB.ptr, rows * F, F, 2);
      }
      gemm.gemm({
        M: 2 * rows,
        N: D,
        K: F,
        A: { ptr: dF, ld: F },
        B: { ptr: w.fcW.ptr, ld: D },
        C: { ptr: dD, ld: D },
      });
      this.k.lnBwd({
        dy: dD,
        x: act.xmid.ptr,
        mean: act.mean2.ptr,
        rstd: act.rstd2.ptr,
        gamma: w.ln2w.ptr,
        dresid,
        dresBf,
        SR: 2 * rows,
        R: rows,
        D,
        accumulate: true,
      });
      // out_proj: weight gradient per signal, input gradient for both
      if (w.outMask) {
        this.weightGradient({
          M: D,
          N: D,
          K: rows,
          dY: { ptr: dresBf, ld: D, stride: rows * D },
          X: { ptr: act.o.ptr, ld: D },
          out: w.outMask.grads.ptr,
          outStride: D * D,
        });
        this.reducer?.tensorReady(w.outMask.index, this.stream);
      }
      gemm.gemm({
        M: 2 * rows,
        N: D,
        K: D,
        A: { ptr: dresBf, ld: D },
        B: { ptr: w.outWp.ptr, ld: D },
        C: { ptr: dD, ld: D },
      });
      // the class rows' residual gradients into the full stream (its other rows are zero)
      if (last) this.k.copyRows(dresid, D, this.ptr("dresid"), N * D, 2 * B, D);
      // attention backward of both signals (dO: dD's rows)
      const dqkv = this.ptr("dqkv");
      const h = this.ptr("h");
      if (w.inMask)
        this.k.lnRecompute(act.x.ptr, act.mean1.ptr, act.rstd1.ptr, w.ln1w.ptr, w.ln1b.ptr, h, R, D);
      const below = l > 0 || this.convMask !== undefined; // something below needs the input gradient
      const attention = {
        qkv: act.qkv.ptr,
        bias: this.epilogues.qkvBias ? 0 : w.inB.ptr,
        o: act.o.ptr,
        dO: dD,
        lse: act.lse.ptr,
        dqkv,
        S: 2,
        B,
        N,
        H,
      };
      if (last) this.k.attnClsBwd(attention);
      else this.k.attnBwd(attention);
      // in_proj: the weight gradients of both signals, then their input gradients into dD. The
      // last block's dq is nonzero on the class rows alone (rows N apart): its query third runs on
      // those B rows (in the input gradient, added to the keys' and values' share)
      if (w.inMask) {
        const grads = w.inMask.grads.ptr;
        const dW = (first: number, M: number, K: number, rowStep: number) =>
          this.weightGradient({
            M,
            N: D,
            K,
            dY: { ptr: dqkv + first * BF, ld: rowStep * 3 * D, stride: R * 3 * D },
            X: { ptr: h, ld: rowStep * D },
            out: grads + first * D * F4,
            outStride: 3 * D * D,
          });
        if (last) {
          dW(0, D, B, N); // queries: the class rows
          dW(D, 2 * D, R, 1); // keys and values: every row
        } else dW(0, 3 * D, R, 1);
        // both rows (ce, kl) written: hand the tensor over (also at block 0, before the break below)
        this.reducer?.tensorReady(w.inMask.index, this.stream);
      }
      if (below) {
        const first = last ? D : 0;
        gemm.gemm({
          M: 2 * R,
          N: D,
          K: 3 * D - first,
          A: { ptr: dqkv + first * BF, ld: 3 * D },
          B: { ptr: w.inWp.ptr + first * D * BF, ld: D },
          C: { ptr: dD, ld: D },
        });
        if (last)
          gemm.gemm({
            M: 2 * B,
            N: D,
            K: D,
            A: { ptr: dqkv, ld: N * 3 * D },
            B: { ptr: w.inWp.ptr, ld: D },
            C: { ptr: dD, ld: N * D },
            beta: 1,
          });
      }
      if (!below) break; // nothing below block 0 needs a gradient
      this.k.lnBwd({
        dy: dD,
        x: act.x.ptr,
        mean: act.mean1.ptr,
        rstd: act.rstd1.ptr,
        gamma: w.ln1w.ptr,
        dresid: this.ptr("dresid"),
        dresBf: this.ptr("dresBf"),
        SR: 2 * R,
        R,
        D,
        accumulate: true,
      });
    }
    if (this.convMask) {
      const dPatch = this.ptr("dF");
      this.k.embedLnBwd({
        dresid: this.ptr("dresid"),
        x0: this.ptr("x0"),
        mean: this.ptr("mean0"),
        rstd: this.ptr("rstd0"),
        gamma: this.ptr("lnPreW"),
        dPatch,
        SR: 2 * R,
        R,
        N,
        D,
      });
      this.weightGradient({
        M: D,
        N: K,
        K: B * P,
        dY: { ptr: dPatch, ld: D, stride: B * P * D },
        X: { ptr: this.ptr("patches"), ld: K },
        out: this.convMask.grads.ptr,
        outStride: D * K,
      });
      this.reducer?.tensorReady(this.convMask.index, this.stream);
    }
  }

  /**
   * Both signals' weight gradients dW_s = dY_s^T X (fp32) in one GEMM batched over the signals:
   * dY_s [K, M] (ld; signal s `stride` elements on), X [K, N], into out (rows M of ld N; signal s
   * at out + s * outStride floats).
   */
  private weightGradient(g: {
    M: number;
    N: number;
    K: number;
    dY: { ptr: number; ld: number; stride: number };
    X: { ptr: number; ld: number };
    out: number;
    outStride: number;
  }): void {
    this.blas.gemm({
      M: g.M,
      N: g.N,
      K: g.K,
      A: { ptr: g.dY.ptr, ld: g.dY.ld, stride: g.dY.stride },
      transA: true,
      B: { ptr: g.X.ptr, ld: g.X.ld, stride: 0 },
      C: { ptr: g.out, ld: g.N, stride: g.outStride, type: "f32" },
      batch: 2,
    });
  }

  /**
   * ||S|| per tensor (pre-update), then the fused update of every masked tensor. The norms read
   * the scores only (identical on every rank), not the gradients, so they need not wait for the
   * all-reduce; the update kernels add the regulariser's reg * S to the reduced gradients.
   */
  update(uniforms: number[] | undefined): void {
    const h = this.hyper;
    for (const m of this.masked) this.k.maskSumsq(m.S.ptr, m.numel, this.ptr("partials"), m.index);
    this.k.maskNorms(this.ptr("partials"), this.ptr("sumsqBlocks"), this.ptr("norms"), this.masked.length);
    this.reducer?.wait(this.stream);
    for (const m of this.masked)
      this.k.maskUpdate({
        S: m.S.ptr,
        W: m.W.ptr,
        Wp: this.studentWeight(m),
        grads: m.grads.ptr,
        gradScale: 1 / this.lossScale,
        m: m.m.ptr,
        v: m.v.ptr,
        n: m.numel,
        tensorIndex: m.index,
        norms: this.ptr("norms"),
        slot: m.index,
        params: this.ptr("params"),
        uniforms: uniforms ? uniforms[m.index] : 0,
        seed: this.seed,
        regWeight: h.regWeight,
        threshold: h.threshold,
        lambda: h.gdrLambda,
        beta1: h.adamBeta1,
        beta2: h.adamBeta2,
        eps: h.adamEps,
      });
  }

  /** The whole step on the stream (captured into a graph by the engine). */
  encodeStep(B: number, crops: { cache: number; H: number; W: number } | null, uniforms?: number[]): void {
    const { N, D, E, C, res, patch } = this.dims;
    const R = B * N;
    if (crops)
      this.k.augmentCrop({
        cache: crops.cache,
        indices: this.ptr("indices"),
        boxes: this.ptr("boxes"),
        flips: this.ptr("flips"),
        out: this.ptr("pixels"),
        B,
        H: crops.H,
        W: crops.W,
        R: res,
        mean: CLIP_MEAN,
        std: CLIP_STD,
      });
    this.k.patchify(this.ptr("pixels"), this.ptr("patches"), B, res, patch);
    this.forward(B, "teacher");
    this.forward(B, "student");
    this.cu.fill32(this.ptr("dresid"), 0, 2 * R * D, this.stream);
    this.k.headStep({
      residS: this.ptr("residCS"),
      residT: this.ptr("residCT"),
      N: 1, // the class rows alone: residC [B, D], dresidC [2, B, D]
      D,
      E,
      C,
      lnw: this.ptr("lnPostW"),
      lnb: this.ptr("lnPostB"),
      proj: this.ptr("proj"),
      text: this.ptr("text"),
      scale: this.logitScale,
      labels: this.ptr("labels"),
      B,
      T: this.hyper.klTemperature,
      alpha: this.hyper.fuseAlpha,
      lossScale: this.lossScale,
      dresid: this.ptr("dresidC"),
      stats: this.ptr("stats"),
      logits: this.ptr("logits"),
    });
    this.backward(B);
    this.update(uniforms);
  }

  logitScale = 100;

  /** Evaluation forward of `B` normalised images already in `pixels`. */
  encodeEval(B: number, teacher: boolean, output: "logits" | "features"): void {
    const { D, E, C, res, patch } = this.dims;
    this.k.patchify(this.ptr("pixels"), this.ptr("patches"), B, res, patch);
    this.forward(B, teacher ? "teacher" : "eval-student");
    this.k.headForward({
      resid: this.ptr("residCT"),
      N: 1,
      D,
      E,
      C,
      lnw: this.ptr("lnPostW"),
      lnb: this.ptr("lnPostB"),
      proj: this.ptr("proj"),
      text: this.ptr("text"),
      scale: this.logitScale,
      features: output === "features" ? this.ptr("features") : 0,
      logits: output === "logits" ? this.ptr("logits") : 0,
      B,
    });
  }
}
