/**
 * cuBLASLt for the GEMMs whose algorithm was tuned (gemm-tuning.ts): the same row-major GemmCall
 * as cublas.ts, described once per shape (a plan: operation and matrix layouts), the candidate
 * algorithms cuBLASLt's heuristics offer for it, and cublasLtMatmul with one of them. Operands are
 * swapped as in cublas.ts (column-major C^T = op(B)^T op(A)^T); the engine's stream and workspace.
 */
import { UnmaskError } from "@unmask/clip";
import { CUBLAS_WORKSPACE_BYTES, type GemmCall, gemmCudaType } from "./cublas.js";
import type { Library } from "./libraries.js";
import { DEFAULT_PRECISION, type Precision } from "./precision.js";

const CUBLAS_COMPUTE_32F = 68;
const CUDA_R_32F = 0;
const CUBLAS_OP_N = 0;
const CUBLAS_OP_T = 1;
const DESC_TRANSA = 3;
const DESC_TRANSB = 4;
const LAYOUT_BATCH_COUNT = 5;
const LAYOUT_STRIDED_BATCH_OFFSET = 6;
const DESC_EPILOGUE = 7;
const DESC_BIAS_POINTER = 8;
const DESC_BIAS_DATA_TYPE = 26;
const EPILOGUE_BIAS = 4;
const PREF_MAX_WORKSPACE_BYTES = 1;
/** cublasLtMatmulAlgo_t: 8 x uint64. */
const ALGO_BYTES = 64;
/** cublasLtMatmulHeuristicResult_t: algo, size_t workspaceSize, int state, float wavesCount, int reserved[4]. */
const HEURISTIC_BYTES = 96;

// biome-ignore lint/suspicious/noExplicitAny: koffi functions are variadic by declaration
type Fn = (...args: any[]) => any;

/** The descriptors of one GEMM shape (pointers apart). */
export interface LtPlan {
  op: number;
  a: number;
  b: number;
  c: number;
}

export class CublasLt {
  private readonly fns: Record<string, Fn> = {};
  private handle = 0;
  private readonly plans: LtPlan[] = [];
  private readonly alpha = new Float32Array(1);
  private readonly beta = new Float32Array(1);
  private readonly int32 = new Int32Array(1);
  private readonly int64 = new BigInt64Array(1);

  constructor(
    lib: Library,
    private readonly stream: number,
    private readonly workspace: number,
    /** What the "lowp" operands are. */
    private readonly precision: Precision = DEFAULT_PRECISION,
  ) {
    const declare = (name: string, proto: string) => {
      this.fns[name] = lib.func(proto.replace("NAME", name)) as Fn;
    };
    declare("cublasLtCreate", "int NAME(_Out_ uint64_t *handle)");
    declare("cublasLtDestroy", "int NAME(uint64_t handle)");
    declare("cublasLtMatmulDescCreate", "int NAME(_Out_ uint64_t *desc, int compute, int scale)");
    declare("cublasLtMatmulDescDestroy", "int NAME(uint64_t desc)");
    declare(
      "cublasLtMatmulDescSetAttribute",
      "int NAME(uint64_t desc, int attr, const void *buf, size_t bytes)",
    );
    declare(
      "cublasLtMatrixLayoutCreate",
      "int NAME(_Out_ uint64_t *layout, int type, uint64_t rows, uint64_t cols, int64_t ld)",
    );
    declare("cublasLtMatrixLayoutDestroy", "int NAME(uint64_t layout)");
    declare(
      "cublasLtMatrixLayoutSetAttribute",
      "int NAME(uint64_t layout, int attr, const void *buf, size_t bytes)",
    );
    declare("cublasLtMatmulPreferenceCreate", "int NAME(_Out_ uint64_t *pref)");
    declare("cublasLtMatmulPreferenceDestroy", "int NAME(uint64_t pref)");
    declare(
      "cublasLtMatmulPreferenceSetAttribute",
      "int NAME(uint64_t pref, int attr, const void *buf, size_t bytes)",
    );
    declare(
      "cublasLtMatmulAlgoGetHeuristic",
      "int NAME(uint64_t h, uint64_t op, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t pref, int count, _Out_ uint8_t *results, _Out_ int *returned)",
    );
    declare(
      "cublasLtMatmul",
      "int NAME(uint64_t h, uint64_t op, const float *alpha, uint64_t A, uint64_t Adesc, uint64_t B, uint64_t Bdesc, const float *beta, uint64_t C, uint64_t Cdesc, uint64_t D, uint64_t Ddesc, const uint8_t *algo, uint64_t ws, size_t wsBytes, uint64_t stream)",
    );
    const h = [0];
    this.check("cublasLtCreate", this.fns.cublasLtCreate(h));
    this.handle = Number(h[0]);
  }

  private check(call: string, status: number): void {
    if (status !== 0)
      throw new UnmaskError("CUDA_ERROR", `${call} failed: cuBLASLt status ${status}`, { subject: call });
  }

  private create(fn: string, ...args: unknown[]): number {
    const out = [0];
    this.check(fn, this.fns[fn](out, ...args));
    return Number(out[0]);
  }

  private setInt32(fn: string, obj: number, attr: number, value: number): void {
    this.int32[0] = value;
    this.check(fn, this.fns[fn](obj, attr, this.int32, 4));
  }

  private setInt64(fn: string, obj: number, attr: number, value: number): void {
    this.int64[0] = BigInt(value);
    this.check(fn, this.fns[fn](obj, attr, this.int64, 8));
  }

  /** Descriptors for c's shape, types, transposes, leading dimensions and batches. */
  plan(c: GemmCall): LtPlan {
    const op = this.create("cublasLtMatmulDescCreate", CUBLAS_COMPUTE_32F, CUDA_R_32F);
    // column-major: C^T [N, M] = op(B)^T [N, K] op(A)^T [K, M]
    this.setInt32("cublasLtMatmulDescSetAttribute", op, DESC_TRANSA, c.transB ? CUBLAS_OP_T : CUBLAS_OP_N);
    this.setInt32("cublasLtMatmulDescSetAttribute", op, DESC_TRANSB, c.transA ? CUBLAS_OP_T : CUBLAS_OP_N);
    if (c.bias !== undefined) {
      // the bias is a vector over the rows of the column-major D, i.e. over the row-major N
      this.setInt32("cublasLtMatmulDescSetAttribute", op, DESC_EPILOGUE, EPILOGUE_BIAS);
      this.setInt32(
        "cublasLtMatmulDescSetAttribute",
        op,
        DESC_BIAS_DATA_TYPE,
        gemmCudaType(c.biasType ?? "f32", this.precision),
      );
    }
    const layout = (type: GemmCall["A"]["type"], rows: number, cols: number, ld: number, stride?: number) => {
      const l = this.create("cublasLtMatrixLayoutCreate", gemmCudaType(type, this.precision), rows, cols, ld);
      const batch = c.batch ?? 1;
      if (batch > 1) {
        this.setInt32("cublasLtMatrixLayoutSetAttribute", l, LAYOUT_BATCH_COUNT, batch);
        this.setInt64("cublasLtMatrixLayoutSetAttribute", l, LAYOUT_STRIDED_BATCH_OFFSET, stride ?? 0);
      }
      return l;
    };
    // column-major shapes of the swapped operands: op(B)^T is B^T stored [N, K] (or [K, N] when B is transposed)
    const a = layout(c.B.type, c.transB ? c.K : c.N, c.transB ? c.N : c.K, c.B.ld, c.B.stride);
    const b = layout(c.A.type, c.transA ? c.M : c.K, c.transA ? c.K : c.M, c.A.ld, c.A.stride);
    const cl = layout(c.C.type, c.N, c.M, c.C.ld, c.C.stride);
    const plan = { op, a, b, c: cl };
    this.plans.push(plan);
    return plan;
  }

  /** Up to `count` algorithms cuBLASLt's heuristics rank for the plan, within the workspace. */
  algorithms(plan: LtPlan, count: number): Uint8Array[] {
    const pref = this.create("cublasLtMatmulPreferenceCreate");
    try {
      this.setInt64(
        "cublasLtMatmulPreferenceSetAttribute",
        pref,
        PREF_MAX_WORKSPACE_BYTES,
        CUBLAS_WORKSPACE_BYTES,
      );
      const results = new Uint8Array(count * HEURISTIC_BYTES);
      const returned = [0];
      const status = this.fns.cublasLtMatmulAlgoGetHeuristic(
        this.handle,
        plan.op,
        plan.a,
        plan.b,
        plan.c,
        plan.c,
        pref,
        count,
        results,
        returned,
      );
      if (status !== 0) return []; // no algorithm for this shape: the caller keeps cublasGemmEx
      const view = new DataView(results.buffer);
      const algos: Uint8Array[] = [];
      for (let i = 0; i < returned[0]; i++) {
        const state = view.getInt32(i * HEURISTIC_BYTES + ALGO_BYTES + 8, true);
        if (state === 0) algos.push(results.slice(i * HEURISTIC_BYTES, i * HEURISTIC_BYTES + ALGO_BYTES));
      }
      return algos;
    } finally {
      this.fns.cublasLtMatmulPreferenceDestroy(pref);
    }
  }

  /** c through cublasLtMatmul with `algo` on the stream. */
  matmul(plan: LtPlan, algo: Uint8Array, c: GemmCall): void {
    this.alpha[0] = c.alpha ?? 1;
    this.beta[0] = c.beta ?? 0;
    // calls of one shape share a plan: each sets its own bias, read by cublasLtMatmul as it enqueues
    if (c.bias !== undefined)
      this.setInt64("cublasLtMatmulDescSetAttribute", plan.op, DESC_BIAS_POINTER, c.bias);
    this.check(
      "cublasLtMatmul",
      this.fns.cublasLtMatmul(
        this.handle,
        plan.op,
        this.alpha,
        c.B.ptr,
        plan.a,
        c.A.ptr,
        plan.b,
        this.beta,
        c.C.ptr,
        plan.c,
        c.C.ptr,
        plan.c,
        algo,
        this.workspace,
        CUBLAS_WORKSPACE_BYTES,
        this.stream,
      ),
    );
  }

  dispose(): void {
    for (const p of this.plans) {
      this.fns.cublasLtMatmulDescDestroy(p.op);
      for (const l of [p.a, p.b, p.c]) this.fns.cublasLtMatrixLayoutDestroy(l);
    }
    this.plans.length = 0;
    if (this.handle) this.fns.cublasLtDestroy(this.handle);
    this.handle = 0;
  }
}
