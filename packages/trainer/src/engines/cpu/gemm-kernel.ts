/**
 * The GEMM inner kernels in WebAssembly SIMD, generated at load time (wasm-emit.ts).
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
 * macro(mTiles, nTiles, kc, aPack, bPack, c, ldcBytes, accumulate)
 *   the same tile over a block of packed panels: for each of nTiles panels of B, for each of
 *   mTiles panels of A (one B panel stays in L1 while the A block streams from L2). It calls
 *   `tile` rather than inlining it: inlined, V8's register allocator spills the accumulators and
 *   the product runs at half speed (measured 25-29 against 46-53 GFLOP/s).
 *
 * Floats are accumulated in float32 in the order k = 0, 1, ..., kc-1 per output element.
 */
import { encodeModule, FunctionBuilder } from "./wasm-emit.js";
import { type WasmMemory, type WasmModule, wasmApi } from "./wasm-runtime.js";

export const TILE_ROWS = 5;
export const TILE_COLS = 8;
const VECTORS = TILE_COLS / 4;

/** Largest memory the module accepts: 65536 pages of 64 KiB = 4 GiB (wasm32). */
export const WASM_MAX_PAGES = 65536;

interface TileLocals {
  kc: number;
  a: number;
  b: number;
  c: number;
  ldc: number;
  accumulate: number;
}

/** Emits the tile body; advances a and b locals to the end of their panels (kc becomes 0). */
function emitTile(f: FunctionBuilder, p: TileLocals, rowPointer: number): void {
  const acc: number[] = [];
  for (let i = 0; i < TILE_ROWS * VECTORS; i++) acc.push(f.local("v128"));
  const bv: number[] = [];
  for (let j = 0; j < VECTORS; j++) bv.push(f.local("v128"));
  const av = f.local("v128");
  const counter = f.local("i32");

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
    f.get(p.a)
      .v128Load32Splat(i * 4)
      .set(av);
    for (let j = 0; j < VECTORS; j++) {
      const k = acc[i * VECTORS + j];
      f.get(k).get(av).get(bv[j]).f32x4Mul().f32x4Add().set(k);
    }
  }
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

function macroFunction(): FunctionBuilder {
  // params: mTiles, nTiles, kc, aPack, bPack, c, ldcBytes, accumulate
  const f = new FunctionBuilder("macro", 8);
  const [mTiles, nTiles, kc, aPack, bPack, c, ldc, accumulate] = [0, 1, 2, 3, 4, 5, 6, 7];
  const jr = f.local("i32");
  const ir = f.local("i32");
  const a = f.local("i32");
  const b = f.local("i32");
  const cTile = f.local("i32");
  const aPanelBytes = f.local("i32");
  const bPanelBytes = f.local("i32");
  f.get(kc)
    .i32(TILE_ROWS * 4)
    .mul()
    .set(aPanelBytes);
  f.get(kc)
    .i32(TILE_COLS * 4)
    .mul()
    .set(bPanelBytes);

  f.i32(0).set(jr);
  f.block().get(nTiles).eqz().brIf(0).loop();
  f.i32(0).set(ir);
  f.block().get(mTiles).eqz().brIf(0).loop();
  // a = aPack + ir * aPanelBytes; b = bPack + jr * bPanelBytes
  f.get(aPack).get(ir).get(aPanelBytes).mul().add().set(a);
  f.get(bPack).get(jr).get(bPanelBytes).mul().add().set(b);
  // cTile = c + ir * MR * ldc + jr * NR * 4
  f.get(c)
    .get(ir)
    .i32(TILE_ROWS)
    .mul()
    .get(ldc)
    .mul()
    .add()
    .get(jr)
    .i32(TILE_COLS * 4)
    .mul()
    .add()
    .set(cTile);
  f.get(kc).get(a).get(b).get(cTile).get(ldc).get(accumulate).call(TILE_FUNCTION_INDEX);
  f.get(ir).i32(1).add().tee(ir).get(mTiles).ltU().brIf(0);
  f.end().end();
  f.get(jr).i32(1).add().tee(jr).get(nTiles).ltU().brIf(0);
  f.end().end();
  return f;
}

export interface GemmKernels {
  tile(kc: number, aPack: number, bPack: number, c: number, ldcBytes: number, accumulate: number): void;
  macro(
    mTiles: number,
    nTiles: number,
    kc: number,
    aPack: number,
    bPack: number,
    c: number,
    ldcBytes: number,
    accumulate: number,
  ): void;
}

/** Function order in the module: tile first, so macro can call it by index. */
const TILE_FUNCTION_INDEX = 0;

let compiled: WasmModule | undefined;

/** The compiled module (compiled once per thread; instances share the caller's memory). */
export function gemmKernelModule(): WasmModule {
  compiled ??= new wasmApi.Module(encodeModule([tileFunction(), macroFunction()], WASM_MAX_PAGES));
  return compiled;
}

export function instantiateGemmKernels(memory: WasmMemory): GemmKernels {
  const instance = new wasmApi.Instance(gemmKernelModule(), { env: { memory } });
  return instance.exports as unknown as GemmKernels;
}
