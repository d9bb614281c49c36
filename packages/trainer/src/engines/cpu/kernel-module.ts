/**
 * The cpu engine's WebAssembly module: the GEMM functions (gemm-kernel.ts) followed by the
 * elementwise kernels (elementwise-kernel.ts), generated at load time, compiled once per thread
 * and instantiated on an arena's shared memory.
 */
import {
  addIntoFunction,
  addRowsFunction,
  expShiftedFunction,
  layernormBackwardFunction,
  layernormForwardFunction,
  quickGeluBackwardFunction,
  quickGeluForwardFunction,
} from "./elementwise-kernel.js";
import { gemmFunctions } from "./gemm-kernel.js";
import { encodeModule, FunctionBuilder } from "./wasm-emit.js";
import { type WasmMemory, type WasmModule, wasmApi } from "./wasm-runtime.js";

/** Largest memory the module accepts: 65536 pages of 64 KiB = 4 GiB (wasm32). */
export const WASM_MAX_PAGES = 65536;

export interface GemmKernels {
  tile(kc: number, aPack: number, bPack: number, c: number, ldcBytes: number, accumulate: number): void;
  tileDirect(
    kc: number,
    a: number,
    ldaBytes: number,
    bPack: number,
    c: number,
    ldcBytes: number,
    accumulate: number,
  ): void;
  copy2d(
    dst: number,
    dRow: number,
    dCol: number,
    src: number,
    sRow: number,
    sCol: number,
    rows: number,
    cols: number,
  ): void;
  gemm(
    transA: number,
    transB: number,
    m: number,
    n: number,
    k: number,
    a: number,
    lda: number,
    b: number,
    ldb: number,
    c: number,
    ldc: number,
    accumulate: number,
    scratch: number,
  ): void;
  /** elementwise-kernel.ts; pointers in bytes, counts in floats (multiples of 4) */
  quickGeluForward(out: number, inp: number, count: number): void;
  quickGeluBackward(dinp: number, dout: number, inp: number, count: number, signals: number): void;
  expShifted(p: number, count: number, shiftBits: number, scaleBits: number): void;
  addRows(c: number, ldcBytes: number, bias: number, rows: number, n: number): void;
  addInto(dst: number, src: number, count: number): void;
  layernormForward(
    out: number,
    mean: number,
    rstd: number,
    inp: number,
    weight: number,
    bias: number,
    rows: number,
    width: number,
    epsBits: number,
  ): void;
  layernormBackward(
    dinp: number,
    dout: number,
    inp: number,
    weight: number,
    mean: number,
    rstd: number,
    rows: number,
    width: number,
    gradRows: number,
    accumulate: number,
  ): void;
}

let compiled: WasmModule | undefined;

/** The module's bytes (a worker thread compiles them again). */
export function gemmKernelBytes(): Uint8Array {
  return encodeModule(
    [
      ...gemmFunctions(),
      quickGeluForwardFunction(new FunctionBuilder("quickGeluForward", 3)),
      quickGeluBackwardFunction(new FunctionBuilder("quickGeluBackward", 5)),
      expShiftedFunction(new FunctionBuilder("expShifted", 4)),
      addRowsFunction(new FunctionBuilder("addRows", 5)),
      addIntoFunction(new FunctionBuilder("addInto", 3)),
      layernormForwardFunction(new FunctionBuilder("layernormForward", 9)),
      layernormBackwardFunction(new FunctionBuilder("layernormBackward", 10)),
    ],
    WASM_MAX_PAGES,
  );
}

/** The compiled module (once per thread); instances share the caller's memory. */
export function gemmKernelModule(): WasmModule {
  compiled ??= new wasmApi.Module(gemmKernelBytes());
  return compiled;
}

export function instantiateGemmKernels(memory: WasmMemory): GemmKernels {
  const instance = new wasmApi.Instance(gemmKernelModule(), { env: { memory } });
  return instance.exports as unknown as GemmKernels;
}
