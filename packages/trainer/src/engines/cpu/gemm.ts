/**
 * General matrix multiply, row-major:
 *
 *   C[m, n] (+)= op(A)[m, k] . op(B)[k, n]
 *   op(A) = A (stored [m, lda]) or A^T (transA: stored [k, lda]); likewise op(B).
 *   accumulate: add into C instead of overwriting it.
 *
 * Argument order follows BLAS (transA, transB, m, n, k, A, lda, B, ldb, C, ldc), row-major; the
 * arrays start at the matrices' first elements. When all three live in one Arena the product runs
 * in WebAssembly SIMD (gemm-kernel.ts: blocks of A and B packed into panels, the BLIS loop order);
 * otherwise a plain loop that accumulates in float64 (gemmReference), which is also what the
 * kernels are tested against.
 */
import { Arena } from "./arena.js";
import { GEMM_SCRATCH_FLOATS } from "./gemm-kernel.js";
import { type GemmArgs, PARALLEL_MIN_FLOP } from "./gemm-threads.js";

export function gemmReference(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  c: Float32Array,
  ldc: number,
  accumulate: boolean,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = accumulate ? c[i * ldc + j] : 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[p * lda + i] : a[i * lda + p];
        const bv = transB ? b[j * ldb + p] : b[p * ldb + j];
        sum += av * bv;
      }
      c[i * ldc + j] = sum;
    }
  }
}

/** Per-arena packing scratch of the calling thread, made on first use. */
const scratchByArena = new WeakMap<Arena, Float32Array>();

function scratchFor(arena: Arena): Float32Array {
  let scratch = scratchByArena.get(arena);
  if (!scratch) {
    scratch = arena.floats(GEMM_SCRATCH_FLOATS, "gemm packing scratch");
    scratchByArena.set(arena, scratch);
  }
  return scratch;
}

export function gemm(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  c: Float32Array,
  ldc: number,
  accumulate: boolean,
): void {
  if (m === 0 || n === 0) return;
  const arena = Arena.of(c);
  if (!arena || Arena.of(a) !== arena || Arena.of(b) !== arena) {
    gemmReference(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    return;
  }
  if (k === 0) {
    if (!accumulate) for (let i = 0; i < m; i++) c.fill(0, i * ldc, i * ldc + n);
    return;
  }
  const scratch = scratchFor(arena).byteOffset;
  const args: GemmArgs = [
    transA ? 1 : 0,
    transB ? 1 : 0,
    m,
    n,
    k,
    a.byteOffset,
    lda,
    b.byteOffset,
    ldb,
    c.byteOffset,
    ldc,
    accumulate ? 1 : 0,
  ];
  const threads = 2 * m * n * k >= PARALLEL_MIN_FLOP ? arena.gemmThreads() : undefined;
  if (threads) threads.run(args, (slice) => arena.kernels.gemm(...slice, scratch));
  else arena.kernels.gemm(...args, scratch);
}
