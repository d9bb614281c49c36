/**
 * General matrix multiply, row-major:
 *
 *   C[m, n] (+)= op(A)[m, k] . op(B)[k, n]
 *   op(A) = A (stored [m, lda]) or A^T (transA: stored [k, lda]); likewise op(B).
 *   accumulate: add into C instead of overwriting it.
 *
 * Argument order follows BLAS (transA, transB, m, n, k, A, lda, B, ldb, C, ldc), row-major; the
 * arrays start at the matrices' first elements. When all three live in one Arena the product runs
 * in the WebAssembly SIMD kernels (gemm-kernel.ts) after packing blocks of A and B into panels
 * (the BLIS loop order: columns of C in blocks of NC, k in blocks of KC, rows in blocks of MC);
 * otherwise a plain loop that accumulates in float64 (gemmReference), which is also what the
 * kernels are tested against.
 */
import { Arena } from "./arena.js";
import { TILE_COLS, TILE_ROWS } from "./gemm-kernel.js";

/** k per packed block: a B panel of KC x NR floats (8 KiB) stays in L1. */
const KC = 256;
/** Rows per packed A block: MC x KC floats (120 KiB) stay in L2. */
const MC = TILE_ROWS * 24;
/** Columns per packed B block: KC x NC floats (1 MiB) stay in L2/L3. */
const NC = TILE_COLS * 128;

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

/** Per-arena packing scratch, made on first use. */
interface PackBuffers {
  aPack: Float32Array;
  bPack: Float32Array;
  tile: Float32Array;
}
const packsByArena = new WeakMap<Arena, PackBuffers>();

export function packBuffersFor(arena: Arena): PackBuffers {
  let packs = packsByArena.get(arena);
  if (!packs) {
    packs = {
      aPack: arena.floats(MC * KC, "gemm A panels"),
      bPack: arena.floats(KC * NC, "gemm B panels"),
      tile: arena.floats(TILE_ROWS * TILE_COLS, "gemm edge tile"),
    };
    packsByArena.set(arena, packs);
  }
  return packs;
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
  gemmPacked(
    arena,
    packBuffersFor(arena),
    transA,
    transB,
    m,
    n,
    k,
    a.byteOffset >> 2,
    lda,
    b.byteOffset >> 2,
    ldb,
    c.byteOffset >> 2,
    ldc,
    accumulate,
  );
}

/**
 * The blocked product on float offsets into the arena's heap (so a worker thread can run a slice
 * of rows with its own pack buffers).
 */
export function gemmPacked(
  arena: Arena,
  packs: PackBuffers,
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  aOffset: number,
  lda: number,
  bOffset: number,
  ldb: number,
  cOffset: number,
  ldc: number,
  accumulate: boolean,
): void {
  const heap = arena.f32;
  const { kernels } = arena;
  const aPackOffset = packs.aPack.byteOffset >> 2;
  const bPackOffset = packs.bPack.byteOffset >> 2;
  const tileOffset = packs.tile.byteOffset >> 2;
  for (let jc = 0; jc < n; jc += NC) {
    const nb = Math.min(NC, n - jc);
    const nFull = Math.floor(nb / TILE_COLS);
    const nPanels = Math.ceil(nb / TILE_COLS);
    for (let pc = 0; pc < k; pc += KC) {
      const kb = Math.min(KC, k - pc);
      const add = accumulate || pc > 0 ? 1 : 0;
      packB(heap, bPackOffset, transB, bOffset, ldb, pc, kb, jc, nb);
      for (let ic = 0; ic < m; ic += MC) {
        const mb = Math.min(MC, m - ic);
        const mFull = Math.floor(mb / TILE_ROWS);
        const mPanels = Math.ceil(mb / TILE_ROWS);
        packA(heap, aPackOffset, transA, aOffset, lda, ic, mb, pc, kb);
        const cBlock = cOffset + ic * ldc + jc;
        if (mFull > 0 && nFull > 0)
          kernels.macro(mFull, nFull, kb, aPackOffset * 4, bPackOffset * 4, cBlock * 4, ldc * 4, add);
        // Edge tiles (last partial row panel, last partial column panel) go through a scratch tile.
        for (let jr = 0; jr < nPanels; jr++) {
          const cols = Math.min(TILE_COLS, nb - jr * TILE_COLS);
          for (let ir = jr < nFull ? mFull : 0; ir < mPanels; ir++) {
            const rows = Math.min(TILE_ROWS, mb - ir * TILE_ROWS);
            const cTile = cBlock + ir * TILE_ROWS * ldc + jr * TILE_COLS;
            if (add) {
              heap.fill(0, tileOffset, tileOffset + TILE_ROWS * TILE_COLS);
              for (let r = 0; r < rows; r++)
                for (let q = 0; q < cols; q++)
                  heap[tileOffset + r * TILE_COLS + q] = heap[cTile + r * ldc + q];
            }
            kernels.tile(
              kb,
              (aPackOffset + ir * TILE_ROWS * kb) * 4,
              (bPackOffset + jr * TILE_COLS * kb) * 4,
              tileOffset * 4,
              TILE_COLS * 4,
              add,
            );
            for (let r = 0; r < rows; r++)
              for (let q = 0; q < cols; q++) heap[cTile + r * ldc + q] = heap[tileOffset + r * TILE_COLS + q];
          }
        }
      }
    }
  }
}

/** Packs rows ic..ic+mb of op(A), k range pc..pc+kb, into MR-row panels interleaved by k. */
function packA(
  heap: Float32Array,
  dst0: number,
  transA: boolean,
  aOffset: number,
  lda: number,
  ic: number,
  mb: number,
  pc: number,
  kb: number,
): void {
  const MR = TILE_ROWS;
  for (let p = 0; p * MR < mb; p++) {
    const rows = Math.min(MR, mb - p * MR);
    const dst = dst0 + p * MR * kb;
    const row0 = ic + p * MR;
    if (!transA) {
      for (let r = 0; r < rows; r++) {
        const src = aOffset + (row0 + r) * lda + pc;
        for (let kk = 0; kk < kb; kk++) heap[dst + kk * MR + r] = heap[src + kk];
      }
    } else {
      for (let kk = 0; kk < kb; kk++) {
        const src = aOffset + (pc + kk) * lda + row0;
        for (let r = 0; r < rows; r++) heap[dst + kk * MR + r] = heap[src + r];
      }
    }
    if (rows < MR)
      for (let kk = 0; kk < kb; kk++) for (let r = rows; r < MR; r++) heap[dst + kk * MR + r] = 0;
  }
}

/** Packs columns jc..jc+nb of op(B), k range pc..pc+kb, into NR-column panels interleaved by k. */
function packB(
  heap: Float32Array,
  dst0: number,
  transB: boolean,
  bOffset: number,
  ldb: number,
  pc: number,
  kb: number,
  jc: number,
  nb: number,
): void {
  const NR = TILE_COLS;
  for (let q = 0; q * NR < nb; q++) {
    const cols = Math.min(NR, nb - q * NR);
    const dst = dst0 + q * NR * kb;
    const col0 = jc + q * NR;
    if (!transB) {
      for (let kk = 0; kk < kb; kk++) {
        const src = bOffset + (pc + kk) * ldb + col0;
        const d = dst + kk * NR;
        for (let c = 0; c < cols; c++) heap[d + c] = heap[src + c];
        for (let c = cols; c < NR; c++) heap[d + c] = 0;
      }
    } else {
      for (let c = 0; c < cols; c++) {
        const src = bOffset + (col0 + c) * ldb + pc;
        for (let kk = 0; kk < kb; kk++) heap[dst + kk * NR + c] = heap[src + kk];
      }
      for (let c = cols; c < NR; c++) for (let kk = 0; kk < kb; kk++) heap[dst + kk * NR + c] = 0;
    }
  }
}
