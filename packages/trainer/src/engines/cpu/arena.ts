/**
 * One block of memory for a cpu engine: a shared WebAssembly memory that holds every buffer the
 * GEMM kernels touch (weights, activations, gradients, packing scratch), so the kernels address
 * them by byte offset and worker threads can share them (docs/cuda-engine.md 6: one arena, no
 * allocation inside the training loop).
 *
 * Buffers are Float32Array / Int32Array views, 64-byte aligned, handed out by a bump allocator
 * that grows the memory when needed. Growing a shared memory never detaches older views, so a
 * view stays valid for the arena's life.
 */
import { UnmaskError } from "@unmask/clip";
import { GEMM_SCRATCH_FLOATS } from "./gemm-kernel.js";
import { GemmThreads } from "./gemm-threads.js";
import { type GemmKernels, instantiateGemmKernels, WASM_MAX_PAGES } from "./kernel-module.js";
import { type WasmMemory, wasmApi } from "./wasm-runtime.js";

const PAGE_BYTES = 65536;
/** Alignment of every buffer: a cache line, so no two buffers share one. */
const ALIGN_BYTES = 64;

/** Buffers of a registered arena, by their backing SharedArrayBuffer object. */
const arenaByBuffer = new WeakMap<ArrayBufferLike, Arena>();

export class Arena {
  readonly memory: WasmMemory;
  readonly kernels: GemmKernels;
  private topBytes = ALIGN_BYTES; // offset 0 is never handed out

  /** Threads for large GEMMs (1: the calling thread only). */
  readonly threads: number;
  private pool: GemmThreads | undefined;

  constructor(initialBytes = 16 * PAGE_BYTES, threads = 1) {
    this.threads = Math.max(1, Math.floor(threads));
    const pages = Math.max(1, Math.ceil(initialBytes / PAGE_BYTES));
    this.memory = new wasmApi.Memory({ initial: pages, maximum: WASM_MAX_PAGES, shared: true });
    this.kernels = instantiateGemmKernels(this.memory);
    arenaByBuffer.set(this.memory.buffer, this);
  }

  /** The worker threads, started on first use (none when threads is 1). */
  gemmThreads(): GemmThreads | undefined {
    if (this.threads > 1 && !this.pool)
      this.pool = new GemmThreads(this.memory, this.threads, (w) =>
        this.floats(GEMM_SCRATCH_FLOATS, `gemm scratch of worker ${w}`),
      );
    return this.pool;
  }

  /** Stops the worker threads (the memory stays usable on the calling thread). */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.close();
  }

  /** The arena that owns every one of the views (nulls ignored), if there is one. */
  static common(...views: (ArrayBufferView | null)[]): Arena | undefined {
    let arena: Arena | undefined;
    for (const view of views) {
      if (!view) continue;
      const owner = arenaByBuffer.get(view.buffer);
      if (!owner || (arena && owner !== arena)) return undefined;
      arena = owner;
    }
    return arena;
  }

  /** The arena that owns a view, if any. */
  static of(view: ArrayBufferView): Arena | undefined {
    return arenaByBuffer.get(view.buffer);
  }

  get usedBytes(): number {
    return this.topBytes;
  }

  private reserve(bytes: number, what: string): number {
    const offset = this.topBytes;
    const end = offset + Math.ceil(bytes / ALIGN_BYTES) * ALIGN_BYTES;
    if (end > WASM_MAX_PAGES * PAGE_BYTES)
      throw new UnmaskError(
        "CPU_ENGINE_OUT_OF_MEMORY",
        `cpu engine: ${what} needs ${end} bytes in all, over the 4 GiB a WebAssembly memory can hold; use a smaller batch or the cuda engine`,
        { subject: what },
      );
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      this.memory.grow(Math.ceil((end - have) / PAGE_BYTES));
    }
    this.topBytes = end;
    return offset;
  }

  /** A zeroed float32 buffer of `count` elements; `what` names it in errors. */
  floats(count: number, what = "buffer"): Float32Array {
    const offset = this.reserve(count * 4, what);
    const view = new Float32Array(this.memory.buffer, offset, count);
    // Register the view's own buffer object: V8 may hand out a fresh SharedArrayBuffer object for
    // a shared memory's `buffer` (seen after growth), so identity with an earlier one is not assured.
    arenaByBuffer.set(view.buffer, this);
    return view;
  }

  /** A float32 copy of `source` inside the arena. */
  copyOf(source: Float32Array, what = "buffer"): Float32Array {
    const out = this.floats(source.length, what);
    out.set(source);
    return out;
  }
}
