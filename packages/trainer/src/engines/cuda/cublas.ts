/**
 * 16-bit GEMMs (bf16, or fp16: EngineOptions.precision) with fp32 accumulation through cuBLAS
 * (cublasGemmEx / cublasGemmStridedBatchedEx, or cublasLtMatmul with the algorithm gemm-tuning.ts
 * chose for the shape, or for calls with a bias epilogue cuBLASLt's first heuristic choice),
 * expressed in row-major terms. cuBLAS is column-major; a row-major C = op(A) op(B) is the
 * column-major C^T = op(B)^T op(A)^T, so every call swaps the operands and M with N.
 *
 * The handle uses a fixed workspace (so the calls can be captured into a CUDA graph) and the
 * engine's stream. Every call is checked and throws UnmaskError CUDA_ERROR naming the call.
 */
import { UnmaskError } from "@unmask/clip";
import type { CublasLt, LtPlan } from "./cublas-lt.js";
import type { CudaDriver } from "./driver.js";
import type { Library } from "./libraries.js";
import { DEFAULT_PRECISION, type Precision } from "./precision.js";
import type { LaunchProfiler } from "./profile.js";

const CUBLAS_OP_N = 0;
const CUBLAS_OP_T = 1;
const CUDA_R_32F = 0;
const CUDA_R_16F = 2;
const CUDA_R_16BF = 14;
const CUBLAS_COMPUTE_32F = 68;
const CUBLAS_GEMM_DEFAULT = -1;
/** cuBLAS asks for up to 32 MiB of workspace on Hopper. */
export const CUBLAS_WORKSPACE_BYTES = 32 << 20;

/** An operand's type: fp32, or "lowp", the engine's 16-bit type (bf16 or fp16, its precision). */
export type GemmType = "lowp" | "f32";

/** The cudaDataType of a GEMM operand (undefined: lowp). */
export function gemmCudaType(t: GemmType | undefined, precision: Precision): number {
  if (t === "f32") return CUDA_R_32F;
  return precision === "fp16" ? CUDA_R_16F : CUDA_R_16BF;
}

/** Row-major operands: a pointer, its leading dimension (elements), batch stride (elements). */
export interface GemmOperand {
  ptr: number;
  ld: number;
  stride?: number;
  type?: GemmType;
}

export interface GemmCall {
  /** C [M, N] = alpha * op(A) op(B) + beta * C, op(A) [M, K], op(B) [K, N]. */
  M: number;
  N: number;
  K: number;
  A: GemmOperand;
  B: GemmOperand;
  C: GemmOperand;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  /** Number of strided batches (1: plain GEMM). */
  batch?: number;
  /**
   * A vector of N values (biasType, default fp32) added to every row of C by cuBLASLt's BIAS
   * epilogue before C's rounding: the in_proj bias into qkv (lowp: cuBLASLt takes no fp32 bias
   * with a 16-bit C), and with beta = 1 and an fp32 C a layer's output bias and its residual add.
   * Unbatched calls only; they need cuBLASLt (Cublas.lt).
   */
  bias?: number;
  biasType?: GemmType;
}

/** Everything of a call but its pointers: calls with one key can share one tuned algorithm. */
export function gemmKey(c: GemmCall): string {
  const op = (o: GemmOperand) => `${o.type ?? "lowp"}/${o.ld}/${o.stride ?? 0}`;
  return `${c.M}x${c.N}x${c.K}x${c.batch ?? 1} ${c.transA ? "T" : "N"}${c.transB ? "T" : "N"} ${op(c.A)} ${op(c.B)} ${op(c.C)} ${c.alpha ?? 1} ${c.beta ?? 0}${c.bias === undefined ? "" : ` bias/${c.biasType ?? "f32"}`}`;
}

/** A call's shape for people (profiles, tuning tables): "50432x768x3072 NT f32 +C +bias". */
export function gemmLabel(c: GemmCall, precision: Precision = DEFAULT_PRECISION): string {
  const batch = c.batch ?? 1;
  return `${c.M}x${c.N}x${c.K}${batch > 1 ? ` x${batch}` : ""} ${c.transA ? "T" : "N"}${c.transB ? "T" : "N"} ${c.C.type === "f32" ? "f32" : precision}${c.beta ? " +C" : ""}${c.bias === undefined ? "" : " +bias"}`;
}

/** A tuned shape's cuBLASLt plan and algorithm (gemm-tuning.ts). */
export interface GemmChoice {
  plan: LtPlan;
  algo: Uint8Array;
}

// biome-ignore lint/suspicious/noExplicitAny: koffi functions are variadic by declaration
type Fn = (...args: any[]) => any;

export class Cublas {
  private readonly fns: Record<string, Fn> = {};
  private handle = 0;
  private readonly alpha = new Float32Array(1);
  private readonly beta = new Float32Array(1);
  /** GEMMs issued (for benches: GEMMs per step). */
  calls = 0;
  /** Bench hook: brackets every GEMM with events (eager steps only). */
  profiler?: LaunchProfiler;
  /** Shapes whose tuning picked a cuBLASLt algorithm (by gemmKey): run with it instead of cublasGemmEx. */
  readonly choices = new Map<string, GemmChoice>();
  /** cuBLASLt, for the tuned algorithms and the calls with a bias epilogue. */
  lt?: CublasLt;
  /** Calls with a bias epilogue (by gemmKey): their plan and cuBLASLt's first heuristic algorithm. */
  private readonly epiloguePlans = new Map<string, GemmChoice | null>();
  /** When set, gemm() hands every call to it and runs nothing itself (the tuning pass). */
  interceptor?: (c: GemmCall) => void;

  constructor(
    lib: Library,
    driver: CudaDriver,
    stream: number,
    workspace: number,
    /** What the "lowp" operands are. */
    readonly precision: Precision = DEFAULT_PRECISION,
  ) {
    const declare = (name: string, proto: string) => {
      this.fns[name] = lib.func(proto.replace("NAME", name)) as Fn;
    };
    declare("cublasCreate_v2", "int NAME(_Out_ uint64_t *handle)");
    declare("cublasDestroy_v2", "int NAME(uint64_t handle)");
    declare("cublasSetStream_v2", "int NAME(uint64_t handle, uint64_t stream)");
    declare("cublasSetWorkspace_v2", "int NAME(uint64_t handle, uint64_t ptr, size_t bytes)");
    declare("cublasGetStatusString", "const char *NAME(int status)");
    declare(
      "cublasGemmEx",
      "int NAME(uint64_t h, int ta, int tb, int m, int n, int k, const float *alpha, uint64_t A, int at, int lda, uint64_t B, int bt, int ldb, const float *beta, uint64_t C, int ct, int ldc, int compute, int algo)",
    );
    declare(
      "cublasGemmStridedBatchedEx",
      "int NAME(uint64_t h, int ta, int tb, int m, int n, int k, const float *alpha, uint64_t A, int at, int lda, int64_t sa, uint64_t B, int bt, int ldb, int64_t sb, const float *beta, uint64_t C, int ct, int ldc, int64_t sc, int batch, int compute, int algo)",
    );
    const h = [0];
    this.check("cublasCreate", this.fns.cublasCreate_v2(h));
    this.handle = Number(h[0]);
    this.check("cublasSetStream", this.fns.cublasSetStream_v2(this.handle, stream));
    this.check(
      "cublasSetWorkspace",
      this.fns.cublasSetWorkspace_v2(this.handle, workspace, CUBLAS_WORKSPACE_BYTES),
    );
    void driver;
  }

  private check(call: string, status: number): void {
    if (status === 0) return;
    let text = "";
    try {
      text = this.fns.cublasGetStatusString(status) as string;
    } catch {
      // keep the numeric status
    }
    throw new UnmaskError("CUDA_ERROR", `${call} failed: cuBLAS status ${status} ${text}`, { subject: call });
  }

  gemm(c: GemmCall): void {
    if (this.interceptor) {
      this.interceptor(c);
      return;
    }
    if (this.profiler) {
      const p = this.profiler;
      this.profiler = undefined;
      try {
        p.around(`gemm ${gemmLabel(c, this.precision)}`, 2 * c.M * c.N * c.K * (c.batch ?? 1), () =>
          this.gemm(c),
        );
      } finally {
        this.profiler = p;
      }
      return;
    }
    // choices exist only once tuning ran: untuned engines skip building the key. A call with a
    // bias epilogue has no cublasGemmEx to fall back on: untuned, it takes cuBLASLt's first choice
    const tuned = this.choices.size > 0 ? this.choices.get(gemmKey(c)) : undefined;
    const choice = tuned ?? (c.bias !== undefined ? this.epilogueChoice(c) : undefined);
    if (choice && this.lt) {
      this.calls++;
      this.lt.matmul(choice.plan, choice.algo, c);
      return;
    }
    this.gemmEx(c);
  }

  /**
   * Whether cuBLASLt runs `c` with its bias epilogue (a call of that shape and those types):
   * false without cuBLASLt, or where its heuristics offer no algorithm. The model asks before it
   * moves a bias into a GEMM.
   */
  supportsEpilogue(c: GemmCall): boolean {
    return this.epiloguePlan({ ...c, bias: c.bias ?? 0 }) !== null;
  }

  /** epiloguePlan's choice for c. @throws UnmaskError CUDA_ERROR where there is none. */
  private epilogueChoice(c: GemmCall): GemmChoice {
    const choice = this.epiloguePlan(c);
    if (!choice)
      throw new UnmaskError(
        "CUDA_ERROR",
        `cuBLASLt offers no algorithm for the bias epilogue of ${gemmKey(c)}`,
        {
          subject: "cublasLtMatmul",
        },
      );
    return choice;
  }

  /** The plan and first heuristic algorithm of a call with a bias epilogue (made once a shape). */
  private epiloguePlan(c: GemmCall): GemmChoice | null {
    if (!this.lt) return null;
    const key = gemmKey(c);
    let choice = this.epiloguePlans.get(key);
    if (choice === undefined) {
      const plan = this.lt.plan(c);
      const [algo] = this.lt.algorithms(plan, 1);
      choice = algo ? { plan, algo } : null;
      this.epiloguePlans.set(key, choice);
    }
    return choice;
  }

  /** c through cublasGemmEx (cublasGemmStridedBatchedEx when batched), cuBLAS's own algorithm choice. */
  gemmEx(c: GemmCall): void {
    const ta = c.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    const tb = c.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    this.alpha[0] = c.alpha ?? 1;
    this.beta[0] = c.beta ?? 0;
    const batch = c.batch ?? 1;
    this.calls++;
    // column-major: C^T [N, M] = op(B)^T [N, K] op(A)^T [K, M]
    if (batch === 1) {
      this.check(
        "cublasGemmEx",
        this.fns.cublasGemmEx(
          this.handle,
          tb,
          ta,
          c.N,
          c.M,
          c.K,
          this.alpha,
          c.B.ptr,
          gemmCudaType(c.B.type, this.precision),
          c.B.ld,
          c.A.ptr,
          gemmCudaType(c.A.type, this.precision),
          c.A.ld,
          this.beta,
          c.C.ptr,
          gemmCudaType(c.C.type, this.precision),
          c.C.ld,
          CUBLAS_COMPUTE_32F,
          CUBLAS_GEMM_DEFAULT,
        ),
      );
      return;
    }
    this.check(
      "cublasGemmStridedBatchedEx",
      this.fns.cublasGemmStridedBatchedEx(
        this.handle,
        tb,
        ta,
        c.N,
        c.M,
        c.K,
        this.alpha,
        c.B.ptr,
        gemmCudaType(c.B.type, this.precision),
        c.B.ld,
        c.B.stride ?? 0,
        c.A.ptr,
        gemmCudaType(c.A.type, this.precision),
        c.A.ld,
        c.A.stride ?? 0,
        this.beta,
        c.C.ptr,
        gemmCudaType(c.C.type, this.precision),
        c.C.ld,
        c.C.stride ?? 0,
        batch,
        CUBLAS_COMPUTE_32F,
        CUBLAS_GEMM_DEFAULT,
      ),
    );
  }

  dispose(): void {
    this.lt?.dispose();
    this.lt = undefined;
    this.choices.clear();
    this.epiloguePlans.clear();
    if (this.handle) this.check("cublasDestroy", this.fns.cublasDestroy_v2(this.handle));
    this.handle = 0;
  }
}
