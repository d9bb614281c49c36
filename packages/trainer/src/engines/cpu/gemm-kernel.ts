/**
 * The GEMM in WebAssembly SIMD, generated at load time (wasm-emit.ts; kernel-module.ts puts these
 * functions first in the cpu engine's module, then the elementwise kernels).
 *
 * tile(kc, aPack, bPack, c, ldcBytes, accumulate)
 *   C[MR x NR] (+)= Apack[kc][MR] . Bpack[kc][NR]
 *   Apack holds MR rows of A interleaved by k (for each k: MR floats); Bpack NR columns of B by k
 *   (for each k: NR floats). The MR x NR accumulator lives in MR * NR/4 v128 locals: each k step
 *   loads NR/4 vectors of B, broadcasts each of the MR values of A and does MR * NR/4 mul+add.
 *   MR = 5, NR = 8 measured fastest on V8's 16 xmm registers (10 accumulators + 2 B vectors +
 *   1 broadcast): about 55-60 GFLOP/s per core from L1 on the 2-core EPYC dev machine, against
 *   about 49 for 4x8, 37 for 4x16 (spills) and 31 for 6x8.
 *
 * copy2d(dst, dRow, dCol, src, sRow, sCol, rows, cols)
 *   a strided 2-D copy (byte strides): packing, zero padding (source stride 0) and edge tiles.
 *
 * tileDirect(kc, a, ldaBytes, bPack, c, ldcBytes, accumulate)
 *   the tile reading a row-major A in place.
 *
 * gemm(...)
 *   the blocked product that packs and calls `tile` (documented at gemmFunction). It calls
 *   `tile` rather than inlining it: inlined, V8's register allocator spills the accumulators and
 *   the product runs at half speed (measured 25-29 against 46-53 GFLOP/s).
 *
 * Floats are accumulated in float32 in the order k = 0, 1, ..., kc-1 per output element.
 */
import { FunctionBuilder } from "./wasm-emit.js";

export const TILE_ROWS = 5;
export const TILE_COLS = 8;
const VECTORS = TILE_COLS / 4;

interface TileLocals {
  kc: number;
  a: number;
  b: number;
  c: number;
  ldc: number;
  accumulate: number;
  /** Direct A: rows of A read in place, ldaBytes apart (no packing); absent: packed A. */
  lda?: number;
}

/** Emits the tile body; advances a and b locals to the end of their panels (kc becomes 0). */
function emitTile(f: FunctionBuilder, p: TileLocals, rowPointer: number): void {
  const acc: number[] = [];
  for (let i = 0; i < TILE_ROWS * VECTORS; i++) acc.push(f.local("v128"));
  const bv: number[] = [];
  for (let j = 0; j < VECTORS; j++) bv.push(f.local("v128"));
  const av = f.local("v128");
  const counter = f.local("i32");
  const rows: number[] = [];
  if (p.lda !== undefined) {
    const lda = p.lda;
    for (let i = 0; i < TILE_ROWS; i++) {
      rows.push(f.local("i32"));
      f.get(p.a).get(lda).i32(i).mul().add().set(rows[i]);
    }
  }

  // accumulators = accumulate ? C : 0
  f.get(p.accumulate).if();
  for (let i = 0; i < TILE_ROWS; i++) {
    f.get(p.c).get(p.ldc).i32(i).mul().add().set(rowPointer);
    for (let j = 0; j < VECTORS; j++)
      f.get(rowPointer)
        .v128Load(j * 16)
        .set(acc[i * VECTORS + j]);
  }
  f.else();
  for (const a of acc) f.v128Zero().set(a);
  f.end();

  // for (counter = kc; counter != 0; counter--) { acc += a[k] * b[k] }
  f.get(p.kc).set(counter);
  f.block().get(counter).eqz().brIf(0).loop();
  for (let j = 0; j < VECTORS; j++)
    f.get(p.b)
      .v128Load(j * 16)
      .set(bv[j]);
  for (let i = 0; i < TILE_ROWS; i++) {
    if (p.lda !== undefined) f.get(rows[i]).v128Load32Splat(0).set(av);
    else
      f.get(p.a)
        .v128Load32Splat(i * 4)
        .set(av);
    for (let j = 0; j < VECTORS; j++) {
      const k = acc[i * VECTORS + j];
      f.get(k).get(av).get(bv[j]).f32x4Mul().f32x4Add().set(k);
    }
  }
  if (p.lda !== undefined) for (const r of rows) f.get(r).i32(4).add().set(r);
  else
    f.get(p.a)
      .i32(TILE_ROWS * 4)
      .add()
      .set(p.a);
  f.get(p.b)
    .i32(TILE_COLS * 4)
    .add()
    .set(p.b);
  f.get(counter).i32(1).sub().tee(counter).brIf(0).end().end();

  for (let i = 0; i < TILE_ROWS; i++) {
    f.get(p.c).get(p.ldc).i32(i).mul().add().set(rowPointer);
    for (let j = 0; j < VECTORS; j++)
      f.get(rowPointer)
        .get(acc[i * VECTORS + j])
        .v128Store(j * 16);
  }
}

function tileFunction(): FunctionBuilder {
  const f = new FunctionBuilder("tile", 6);
  emitTile(f, { kc: 0, a: 1, b: 2, c: 3, ldc: 4, accumulate: 5 }, f.local("i32"));
  return f;
}

/**
 * tileDirect(kc, a, ldaBytes, bPack, c, ldcBytes, accumulate): the tile with A read in place
 * (MR rows ldaBytes apart, k contiguous) instead of packed: a row-major A needs no packing for
 * its full row panels, which saved about 10% of a training step.
 */
function tileDirectFunction(): FunctionBuilder {
  const f = new FunctionBuilder("tileDirect", 7);
  emitTile(f, { kc: 0, a: 1, lda: 2, b: 3, c: 4, ldc: 5, accumulate: 6 }, f.local("i32"));
  return f;
}

/** copy2d(dst, dRow, dCol, src, sRow, sCol, rows, cols): dst[i, j] = src[i, j], strides in bytes. */
function copy2dFunction(): FunctionBuilder {
  const f = new FunctionBuilder("copy2d", 8);
  const [dst, dRow, dCol, src, sRow, sCol, rows, cols] = [0, 1, 2, 3, 4, 5, 6, 7];
  const i = f.local("i32");
  const j = f.local("i32");
  const d = f.local("i32");
  const s = f.local("i32");
  f.forLoop(
    i,
    () => f.i32(0),
    rows,
    1,
    () => {
      f.get(dst).get(i).get(dRow).mul().add().set(d);
      f.get(src).get(i).get(sRow).mul().add().set(s);
      f.forLoop(
        j,
        () => f.i32(0),
        cols,
        1,
        () => {
          f.get(d).get(s).f32Load().f32Store();
          f.get(d).get(dCol).add().set(d);
          f.get(s).get(sCol).add().set(s);
        },
      );
    },
  );
  return f;
}

/**
 * gemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, scratch): the whole blocked
 * product (gemm.ts documents the semantics; pointers in bytes, leading dimensions in floats).
 * scratch holds GEMM_SCRATCH_FLOATS floats: A panels, B panels, an edge tile, and zeros.
 *
 *   for jc (NC columns of C): for pc (KC of k): pack B[pc.., jc..] into NR-column panels
 *     for ic (MC rows): pack A[ic.., pc..] into MR-row panels
 *       for each panel pair: tile(), through the edge tile where the panel pair is partial
 * Packing pads partial panels with zeros, so the tile never reads outside them.
 */
function gemmFunction(): FunctionBuilder {
  const f = new FunctionBuilder("gemm", 13);
  const [transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, scratch] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
  ];
  const L = () => f.local("i32");
  const [jc, nb, pc, kb, add, q0, cols, ic, mb, p0, rows, jr0, ir0] = Array.from({ length: 13 }, L);
  const [aPack, bPack, edge, zero, dst, src, sRow, sCol, aTile, bTile, cTile, direct] = Array.from(
    { length: 12 },
    L,
  );
  /** tileDirect (A in place) or tile (packed A) on C at local cPtr with the pushed row stride */
  const callTile = (cPtr: number, pushLdc: () => void) => {
    f.get(direct).if();
    f.get(kb).get(aTile).get(lda).i32(4).mul().get(bTile).get(cPtr);
    pushLdc();
    f.get(add).call(TILE_DIRECT_INDEX);
    f.else();
    f.get(kb).get(aTile).get(bTile).get(cPtr);
    pushLdc();
    f.get(add).call(TILE_INDEX);
    f.end();
  };
  f.get(scratch).set(aPack);
  f.get(scratch)
    .i32(MC * KC * 4)
    .add()
    .set(bPack);
  f.get(bPack)
    .i32(KC * NC * 4)
    .add()
    .set(edge);
  f.get(edge)
    .i32(TILE_ROWS * TILE_COLS * 4)
    .add()
    .set(zero);
  /** push min(x - y, C) for locals x, y */
  const minRest = (x: number, y: number, C: number) =>
    f.get(x).get(y).sub().i32(C).get(x).get(y).sub().i32(C).ltU().select();
  const copy2d = (
    dstL: number,
    dRow: number,
    dCol: number,
    srcL: number,
    sRowL: number,
    sColL: number,
    rowsL: number,
    colsL: number,
  ) =>
    f.get(dstL).i32(dRow).i32(dCol).get(srcL).get(sRowL).get(sColL).get(rowsL).get(colsL).call(COPY2D_INDEX);

  f.forLoop(
    jc,
    () => f.i32(0),
    n,
    NC,
    () => {
      minRest(n, jc, NC).set(nb);
      f.forLoop(
        pc,
        () => f.i32(0),
        k,
        KC,
        () => {
          minRest(k, pc, KC).set(kb);
          f.get(accumulate).get(pc).i32(0).ne().or().set(add);
          // B panels: the panel at column offset q0 starts q0 * kb floats into bPack; (col, kk) at col + kk NR
          f.forLoop(
            q0,
            () => f.i32(0),
            nb,
            TILE_COLS,
            () => {
              minRest(nb, q0, TILE_COLS).set(cols);
              f.get(bPack).get(q0).get(kb).mul().i32(4).mul().add().set(dst);
              f.get(transB).if();
              // B stored [n, ldb]: (col, kk) at b + ((jc + q0 + col) ldb + pc + kk) 4
              f.get(b).get(jc).get(q0).add().get(ldb).mul().get(pc).add().i32(4).mul().add().set(src);
              f.get(ldb).i32(4).mul().set(sRow);
              f.i32(4).set(sCol);
              f.else();
              // B stored [k, ldb]: (col, kk) at b + ((pc + kk) ldb + jc + q0 + col) 4
              f.get(b).get(pc).get(ldb).mul().get(jc).add().get(q0).add().i32(4).mul().add().set(src);
              f.i32(4).set(sRow);
              f.get(ldb).i32(4).mul().set(sCol);
              f.end();
              copy2d(dst, 4, TILE_COLS * 4, src, sRow, sCol, cols, kb);
              // zero the missing columns of a partial panel: (col, kk) for col in cols..NR
              f.get(cols).i32(TILE_COLS).ltU().if();
              f.get(dst).get(cols).i32(4).mul().add().set(dst);
              f.i32(TILE_COLS).get(cols).sub().set(rows); // rows: scratch count here
              f.i32(0).set(sRow);
              copy2d(dst, 4, TILE_COLS * 4, zero, sRow, sRow, rows, kb);
              f.end();
            },
          );
          f.forLoop(
            ic,
            () => f.i32(0),
            m,
            MC,
            () => {
              minRest(m, ic, MC).set(mb);
              // A panels: the panel at row offset p0 starts p0 * kb floats into aPack; (row, kk) at row + kk MR
              f.forLoop(
                p0,
                () => f.i32(0),
                mb,
                TILE_ROWS,
                () => {
                  minRest(mb, p0, TILE_ROWS).set(rows);
                  // a full panel of a row-major A is read in place (tileDirect): nothing to pack
                  f.block();
                  f.get(transA).eqz().get(rows).i32(TILE_ROWS).eq().and().brIf(0);
                  f.get(aPack).get(p0).get(kb).mul().i32(4).mul().add().set(dst);
                  f.get(transA).if();
                  // A stored [k, lda]: (row, kk) at a + ((pc + kk) lda + ic + p0 + row) 4
                  f.get(a).get(pc).get(lda).mul().get(ic).add().get(p0).add().i32(4).mul().add().set(src);
                  f.i32(4).set(sRow);
                  f.get(lda).i32(4).mul().set(sCol);
                  f.else();
                  // A stored [m, lda]: (row, kk) at a + ((ic + p0 + row) lda + pc + kk) 4
                  f.get(a).get(ic).get(p0).add().get(lda).mul().get(pc).add().i32(4).mul().add().set(src);
                  f.get(lda).i32(4).mul().set(sRow);
                  f.i32(4).set(sCol);
                  f.end();
                  copy2d(dst, 4, TILE_ROWS * 4, src, sRow, sCol, rows, kb);
                  f.get(rows).i32(TILE_ROWS).ltU().if();
                  f.get(dst).get(rows).i32(4).mul().add().set(dst);
                  f.i32(TILE_ROWS).get(rows).sub().set(cols); // cols: scratch count here
                  f.i32(0).set(sRow);
                  copy2d(dst, 4, TILE_ROWS * 4, zero, sRow, sRow, cols, kb);
                  f.end();
                  f.end(); // block: full panel of a row-major A
                },
              );
              // tiles: B panel outer (stays in L1), A panels inner
              f.forLoop(
                jr0,
                () => f.i32(0),
                nb,
                TILE_COLS,
                () => {
                  minRest(nb, jr0, TILE_COLS).set(cols);
                  f.get(bPack).get(jr0).get(kb).mul().i32(4).mul().add().set(bTile);
                  f.forLoop(
                    ir0,
                    () => f.i32(0),
                    mb,
                    TILE_ROWS,
                    () => {
                      minRest(mb, ir0, TILE_ROWS).set(rows);
                      f.get(transA).eqz().get(rows).i32(TILE_ROWS).eq().and().set(direct);
                      f.get(direct).if();
                      // A in place: a + ((ic + ir0) lda + pc) 4
                      f.get(a)
                        .get(ic)
                        .get(ir0)
                        .add()
                        .get(lda)
                        .mul()
                        .get(pc)
                        .add()
                        .i32(4)
                        .mul()
                        .add()
                        .set(aTile);
                      f.else();
                      f.get(aPack).get(ir0).get(kb).mul().i32(4).mul().add().set(aTile);
                      f.end();
                      f.get(c)
                        .get(ic)
                        .get(ir0)
                        .add()
                        .get(ldc)
                        .mul()
                        .get(jc)
                        .add()
                        .get(jr0)
                        .add()
                        .i32(4)
                        .mul()
                        .add()
                        .set(cTile);
                      f.get(ldc).i32(4).mul().set(sRow); // C row stride in bytes
                      f.get(rows).i32(TILE_ROWS).eq().get(cols).i32(TILE_COLS).eq().and().if();
                      callTile(cTile, () => f.get(sRow));
                      f.else();
                      // partial tile: C -> edge (when accumulating), tile on edge, edge -> C
                      f.i32(4).set(sCol);
                      f.get(add).if();
                      copy2d(edge, TILE_COLS * 4, 4, cTile, sRow, sCol, rows, cols);
                      f.end();
                      callTile(edge, () => f.i32(TILE_COLS * 4));
                      f.i32(TILE_COLS * 4).set(src); // edge row stride
                      f.get(cTile)
                        .get(sRow)
                        .get(sCol)
                        .get(edge)
                        .get(src)
                        .get(sCol)
                        .get(rows)
                        .get(cols)
                        .call(COPY2D_INDEX);
                      f.end();
                    },
                  );
                },
              );
            },
          );
        },
      );
    },
  );
  return f;
}

/** Blocking: KC x NR floats of a B panel (8 KiB) stay in L1, MC x KC of A (120 KiB) in L2. */
export const KC = 256;
export const MC = TILE_ROWS * 24;
export const NC = TILE_COLS * 128;
/** Floats of scratch one gemm call needs (per thread): A panels, B panels, edge tile, zeros. */
export const GEMM_SCRATCH_FLOATS = MC * KC + KC * NC + TILE_ROWS * TILE_COLS + 16;

/** Function order in the module (calls go by index). */
const TILE_INDEX = 0;
const COPY2D_INDEX = 1;
const TILE_DIRECT_INDEX = 2;

/** The GEMM functions, in the order the module must hold them (gemm calls the others by index). */
export function gemmFunctions(): FunctionBuilder[] {
  return [tileFunction(), copy2dFunction(), tileDirectFunction(), gemmFunction()];
}
