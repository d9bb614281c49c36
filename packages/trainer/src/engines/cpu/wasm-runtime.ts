/**
 * The few WebAssembly JS API types the cpu engine uses. The workspace compiles against ES2023 and
 * Node's types, which do not declare the WebAssembly namespace (it lives in lib.dom), so the
 * engine declares what it needs here instead of pulling DOM types into every package.
 */
export interface WasmMemory {
  /** A SharedArrayBuffer: the memory is created shared so worker threads can use it. */
  readonly buffer: SharedArrayBuffer;
  grow(deltaPages: number): number;
}

export type WasmModule = object;

interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: Record<string, unknown> };
}

export const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
