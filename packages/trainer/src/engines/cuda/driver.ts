/**
 * The CUDA driver API through koffi: context, memory, module loading, launches, streams, events
 * and CUDA graphs. Every call goes through `check`, which throws UnmaskError CUDA_ERROR naming the
 * call and the driver's error name and string.
 *
 * Device pointers and handles are plain numbers (x86-64 addresses fit in 2^53).
 */
import { UnmaskError } from "@unmask/clip";
import type { Koffi, Library } from "./libraries.js";
import { DEFAULT_PRECISION, type Precision, tensorMapDataType } from "./precision.js";

/** A kernel argument: pointer, int32, uint32, float32 or int64. */
export type KernelArg = ["p", number] | ["i", number] | ["u", number] | ["f", number] | ["l", number];

const MAX_KERNEL_ARGS = 32;
const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
const CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
// cuTensorMapEncodeTiled's enums (cuda.h)
const CU_TENSOR_MAP_SWIZZLE_128B = 3;
const CU_TENSOR_MAP_L2_PROMOTION_L2_256B = 3;
/** Bytes of a CUtensorMap (cuda.h: 64-byte aligned, 128 bytes). */
export const TENSOR_MAP_BYTES = 128;
const CUDA_ERROR_NOT_READY = 600;

// biome-ignore lint/suspicious/noExplicitAny: koffi functions are variadic by declaration
type Fn = (...args: any[]) => any;

export class CudaDriver {
  readonly koffi: Koffi;
  private readonly fns: Record<string, Fn> = {};
  private readonly argBlock: bigint;
  private readonly argView: DataView;
  private readonly mapBlock: bigint;
  readonly device: number;
  readonly deviceName: string;
  /** Streaming multiprocessors (the grid of persistent kernels). */
  readonly multiprocessors: number;
  /** Compute capability as major * 10 + minor (90: Hopper, whose sm_90a kernels the fatbin has). */
  readonly computeCapability: number;
  private context = 0;

  private constructor(koffi: Koffi, lib: Library, ordinal: number) {
    this.koffi = koffi;
    const declare = (name: string, proto: string) => {
      this.fns[name] = lib.func(proto.replace("NAME", name)) as Fn;
    };
    declare("cuGetErrorName", "int NAME(int error, _Out_ const char **str)");
    declare("cuGetErrorString", "int NAME(int error, _Out_ const char **str)");
    declare("cuInit", "int NAME(unsigned int flags)");
    declare("cuDeviceGet", "int NAME(_Out_ int *dev, int ordinal)");
    declare("cuDeviceGetName", "int NAME(_Out_ uint8_t *name, int len, int dev)");
    declare("cuDeviceGetAttribute", "int NAME(_Out_ int *value, int attribute, int dev)");
    declare("cuDevicePrimaryCtxRetain", "int NAME(_Out_ uint64_t *ctx, int dev)");
    declare("cuDevicePrimaryCtxRelease_v2", "int NAME(int dev)");
    declare("cuCtxSetCurrent", "int NAME(uint64_t ctx)");
    declare("cuCtxSynchronize", "int NAME()");
    declare("cuMemAlloc_v2", "int NAME(_Out_ uint64_t *dptr, size_t bytes)");
    declare("cuMemFree_v2", "int NAME(uint64_t dptr)");
    declare("cuMemAllocHost_v2", "int NAME(_Out_ uint64_t *pp, size_t bytes)");
    declare("cuMemFreeHost", "int NAME(uint64_t p)");
    declare("cuMemGetInfo_v2", "int NAME(_Out_ size_t *free, _Out_ size_t *total)");
    declare("cuMemcpyHtoD_v2", "int NAME(uint64_t dst, const void *src, size_t bytes)");
    declare("cuMemcpyDtoH_v2", "int NAME(_Out_ void *dst, uint64_t src, size_t bytes)");
    declare("cuMemcpyDtoHAsync_v2", "int NAME(uint64_t dst, uint64_t src, size_t bytes, uint64_t stream)");
    declare("cuMemcpyDtoD_v2", "int NAME(uint64_t dst, uint64_t src, size_t bytes)");
    declare("cuMemsetD32Async", "int NAME(uint64_t dst, unsigned int value, size_t count, uint64_t stream)");
    declare("cuMemsetD8_v2", "int NAME(uint64_t dst, uint8_t value, size_t count)");
    declare("cuModuleLoadData", "int NAME(_Out_ uint64_t *module, const void *image)");
    declare("cuModuleUnload", "int NAME(uint64_t module)");
    declare("cuModuleGetFunction", "int NAME(_Out_ uint64_t *fn, uint64_t module, const char *name)");
    declare("cuFuncSetAttribute", "int NAME(uint64_t fn, int attribute, int value)");
    declare(
      "cuLaunchKernel",
      "int NAME(uint64_t fn, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int smem, uint64_t stream, uint64_t params, uint64_t extra)",
    );
    declare("cuStreamCreate", "int NAME(_Out_ uint64_t *stream, unsigned int flags)");
    declare("cuStreamDestroy_v2", "int NAME(uint64_t stream)");
    declare("cuStreamSynchronize", "int NAME(uint64_t stream)");
    declare("cuEventCreate", "int NAME(_Out_ uint64_t *event, unsigned int flags)");
    declare("cuEventDestroy_v2", "int NAME(uint64_t event)");
    declare("cuEventRecord", "int NAME(uint64_t event, uint64_t stream)");
    declare("cuEventSynchronize", "int NAME(uint64_t event)");
    declare("cuEventQuery", "int NAME(uint64_t event)");
    try {
      declare(
        "cuEventElapsedTime",
        "int cuEventElapsedTime_v2(_Out_ float *ms, uint64_t start, uint64_t end)",
      );
    } catch {
      declare("cuEventElapsedTime", "int NAME(_Out_ float *ms, uint64_t start, uint64_t end)");
    }
    declare("cuStreamBeginCapture_v2", "int NAME(uint64_t stream, int mode)");
    declare("cuStreamEndCapture", "int NAME(uint64_t stream, _Out_ uint64_t *graph)");
    declare(
      "cuGraphInstantiateWithFlags",
      "int NAME(_Out_ uint64_t *exec, uint64_t graph, unsigned long long flags)",
    );
    declare("cuGraphLaunch", "int NAME(uint64_t exec, uint64_t stream)");
    declare("cuGraphExecDestroy", "int NAME(uint64_t exec)");
    declare("cuGraphDestroy", "int NAME(uint64_t graph)");
    try {
      declare(
        "cuTensorMapEncodeTiled",
        "int NAME(uint64_t map, int dtype, uint32_t rank, uint64_t address, const uint64_t *dims, const uint64_t *strides, const uint32_t *box, const uint32_t *elementStrides, int interleave, int swizzle, int l2Promotion, int oobFill)",
      );
    } catch {
      // a driver older than CUDA 12: no TMA, and the kernels that need it are not used
    }

    // One native block for kernel arguments: values at 8-byte slots, then the pointer array.
    // cuLaunchKernel copies the arguments at the call, so the block is reused by every launch.
    this.argBlock = BigInt(koffi.alloc("uint8", MAX_KERNEL_ARGS * 16) as unknown as bigint);
    this.argView = new DataView(koffi.view(this.argBlock, MAX_KERNEL_ARGS * 16) as ArrayBuffer);
    for (let k = 0; k < MAX_KERNEL_ARGS; k++)
      this.argView.setBigUint64(MAX_KERNEL_ARGS * 8 + k * 8, this.argBlock + BigInt(k * 8), true);
    // cuTensorMapEncodeTiled writes a 64-byte aligned CUtensorMap: a native block aligned by hand
    const mapBlock = BigInt(koffi.alloc("uint8", TENSOR_MAP_BYTES + 64) as unknown as bigint);
    this.mapBlock = (mapBlock + 63n) & ~63n;

    this.check("cuInit", this.fns.cuInit(0));
    const dev = [0];
    this.check("cuDeviceGet", this.fns.cuDeviceGet(dev, ordinal));
    this.device = dev[0];
    const name = new Uint8Array(256);
    this.check("cuDeviceGetName", this.fns.cuDeviceGetName(name, 256, this.device));
    this.deviceName = Buffer.from(name.subarray(0, name.indexOf(0))).toString("utf8");
    const attribute = (which: number, name: string) => {
      const out = [0];
      this.check(`cuDeviceGetAttribute(${name})`, this.fns.cuDeviceGetAttribute(out, which, this.device));
      return out[0];
    };
    this.multiprocessors = attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "multiprocessors");
    this.computeCapability =
      10 * attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "major") +
      attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "minor");
    const ctx = [0];
    this.check("cuDevicePrimaryCtxRetain", this.fns.cuDevicePrimaryCtxRetain(ctx, this.device));
    this.context = Number(ctx[0]);
    this.check("cuCtxSetCurrent", this.fns.cuCtxSetCurrent(this.context));
  }

  /** Initialises the driver on GPU `ordinal`. @throws UnmaskError CUDA_ERROR (e.g. no device) */
  static open(koffi: Koffi, lib: Library, ordinal = 0): CudaDriver {
    return new CudaDriver(koffi, lib, ordinal);
  }

  /** Throws UnmaskError CUDA_ERROR naming `call` when `code` is not CUDA_SUCCESS. */
  check(call: string, code: number): void {
    if (code === 0) return;
    const name = [""];
    const text = [""];
    try {
      this.fns.cuGetErrorName(code, name);
      this.fns.cuGetErrorString(code, text);
    } catch {
      // the error lookup itself failing must not hide the original error
    }
    throw new UnmaskError(
      "CUDA_ERROR",
      `${call} failed: ${name[0] || "CUDA error"} (${code}): ${text[0] || ""}`,
      {
        subject: call,
      },
    );
  }

  alloc(bytes: number): number {
    const out = [0];
    this.check("cuMemAlloc", this.fns.cuMemAlloc_v2(out, Math.max(bytes, 256)));
    return Number(out[0]);
  }

  free(ptr: number): void {
    this.check("cuMemFree", this.fns.cuMemFree_v2(ptr));
  }

  /**
   * Page-locked host memory: copies to and from it run at the bus's speed (pageable memory goes
   * through the driver's staging, a few times slower). The ArrayBuffer views it; freeHost(address)
   * releases it, after which the buffer must not be touched.
   */
  allocHost(bytes: number): { address: bigint; buffer: ArrayBuffer } {
    const out = [0n];
    this.check("cuMemAllocHost", this.fns.cuMemAllocHost_v2(out, bytes));
    const address = BigInt(out[0]);
    return { address, buffer: this.koffi.view(address, bytes) as ArrayBuffer };
  }

  freeHost(address: bigint): void {
    this.check("cuMemFreeHost", this.fns.cuMemFreeHost(address));
  }

  memInfo(): { free: number; total: number } {
    const f = [0];
    const t = [0];
    this.check("cuMemGetInfo", this.fns.cuMemGetInfo_v2(f, t));
    return { free: Number(f[0]), total: Number(t[0]) };
  }

  upload(dst: number, src: ArrayBufferView): void {
    if (src.byteLength === 0) return;
    const bytes = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    this.check("cuMemcpyHtoD", this.fns.cuMemcpyHtoD_v2(dst, bytes, src.byteLength));
  }

  download(dst: ArrayBufferView, src: number): void {
    if (dst.byteLength === 0) return;
    const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
    this.check("cuMemcpyDtoH", this.fns.cuMemcpyDtoH_v2(bytes, src, dst.byteLength));
  }

  /** Queues a copy of `bytes` from device `src` to page-locked host memory at `dst` on `stream`. */
  downloadAsync(dst: bigint, src: number, bytes: number, stream: number): void {
    if (bytes > 0) this.check("cuMemcpyDtoHAsync", this.fns.cuMemcpyDtoHAsync_v2(dst, src, bytes, stream));
  }

  copy(dst: number, src: number, bytes: number): void {
    if (bytes > 0) this.check("cuMemcpyDtoD", this.fns.cuMemcpyDtoD_v2(dst, src, bytes));
  }

  /** Fills `count` 32-bit words on `stream` (capturable into a graph). */
  fill32(dst: number, value: number, count: number, stream: number): void {
    if (count > 0) this.check("cuMemsetD32Async", this.fns.cuMemsetD32Async(dst, value >>> 0, count, stream));
  }

  zero(dst: number, bytes: number): void {
    if (bytes > 0) this.check("cuMemsetD8", this.fns.cuMemsetD8_v2(dst, 0, bytes));
  }

  loadModule(image: Uint8Array): number {
    const out = [0];
    this.check("cuModuleLoadData", this.fns.cuModuleLoadData(out, image));
    return Number(out[0]);
  }

  unloadModule(module: number): void {
    this.check("cuModuleUnload", this.fns.cuModuleUnload(module));
  }

  getFunction(module: number, name: string): number {
    const out = [0];
    this.check(`cuModuleGetFunction(${name})`, this.fns.cuModuleGetFunction(out, module, name));
    return Number(out[0]);
  }

  /** Whether the driver can encode TMA tensor maps (cuTensorMapEncodeTiled, CUDA 12 and later). */
  get canEncodeTensorMaps(): boolean {
    return this.fns.cuTensorMapEncodeTiled !== undefined;
  }

  /**
   * The CUtensorMap of a row-major 16-bit matrix [rows, cols] at `address` (rows `ld` elements
   * apart) read in boxes of boxRows x boxCols (boxCols * 2 = 128 bytes, swizzled 128-byte-wise, as
   * the warpgroup MMAs read K-major tiles); rows past `rows` load as zeros.
   */
  encodeTensorMap(
    address: number,
    rows: number,
    cols: number,
    ld: number,
    boxRows: number,
    boxCols: number,
    precision: Precision = DEFAULT_PRECISION,
  ): Uint8Array {
    const dims = BigUint64Array.of(BigInt(cols), BigInt(rows));
    const strides = BigUint64Array.of(BigInt(ld * 2));
    const box = Uint32Array.of(boxCols, boxRows);
    const elementStrides = Uint32Array.of(1, 1);
    this.check(
      "cuTensorMapEncodeTiled",
      this.fns.cuTensorMapEncodeTiled(
        this.mapBlock,
        tensorMapDataType(precision),
        2,
        address,
        dims,
        strides,
        box,
        elementStrides,
        0,
        CU_TENSOR_MAP_SWIZZLE_128B,
        CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        0,
      ),
    );
    return new Uint8Array(this.koffi.view(this.mapBlock, TENSOR_MAP_BYTES) as ArrayBuffer).slice();
  }

  setMaxDynamicShared(fn: number, bytes: number): void {
    this.check(
      "cuFuncSetAttribute",
      this.fns.cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes),
    );
  }

  launch(
    name: string,
    fn: number,
    grid: [number, number, number],
    block: [number, number, number],
    sharedBytes: number,
    stream: number,
    args: KernelArg[],
  ): void {
    if (args.length > MAX_KERNEL_ARGS)
      throw new Error(`${name}: more than ${MAX_KERNEL_ARGS} kernel arguments`);
    const v = this.argView;
    for (let k = 0; k < args.length; k++) {
      const [kind, value] = args[k];
      const at = k * 8;
      if (kind === "p" || kind === "l") v.setBigInt64(at, BigInt(Math.trunc(value)), true);
      else if (kind === "i") v.setInt32(at, value, true);
      else if (kind === "u") v.setUint32(at, value >>> 0, true);
      else v.setFloat32(at, value, true);
    }
    const params = this.argBlock + BigInt(MAX_KERNEL_ARGS * 8);
    this.check(
      `cuLaunchKernel(${name})`,
      this.fns.cuLaunchKernel(
        fn,
        grid[0],
        grid[1],
        grid[2],
        block[0],
        block[1],
        block[2],
        sharedBytes,
        stream,
        params,
        0,
      ),
    );
  }

  createStream(): number {
    const out = [0];
    this.check("cuStreamCreate", this.fns.cuStreamCreate(out, 0));
    return Number(out[0]);
  }

  destroyStream(stream: number): void {
    this.check("cuStreamDestroy", this.fns.cuStreamDestroy_v2(stream));
  }

  synchronize(stream: number): void {
    this.check("cuStreamSynchronize", this.fns.cuStreamSynchronize(stream));
  }

  createEvent(): number {
    const out = [0];
    this.check("cuEventCreate", this.fns.cuEventCreate(out, 0));
    return Number(out[0]);
  }

  destroyEvent(event: number): void {
    this.check("cuEventDestroy", this.fns.cuEventDestroy_v2(event));
  }

  /** True once the work queued before the event's record has finished (cuEventQuery). */
  eventDone(event: number): boolean {
    const status = this.fns.cuEventQuery(event);
    if (status === CUDA_ERROR_NOT_READY) return false;
    this.check("cuEventQuery", status);
    return true;
  }

  record(event: number, stream: number): void {
    this.check("cuEventRecord", this.fns.cuEventRecord(event, stream));
  }

  /** Milliseconds between two recorded events (waits for the second). */
  elapsed(start: number, end: number): number {
    this.check("cuEventSynchronize", this.fns.cuEventSynchronize(end));
    const ms = [0];
    this.check("cuEventElapsedTime", this.fns.cuEventElapsedTime(ms, start, end));
    return ms[0];
  }

  beginCapture(stream: number): void {
    this.check(
      "cuStreamBeginCapture",
      this.fns.cuStreamBeginCapture_v2(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
    );
  }

  /** Ends the capture and instantiates the graph; returns the executable graph. */
  endCapture(stream: number): { exec: number; graph: number } {
    const g = [0];
    this.check("cuStreamEndCapture", this.fns.cuStreamEndCapture(stream, g));
    const e = [0];
    this.check("cuGraphInstantiateWithFlags", this.fns.cuGraphInstantiateWithFlags(e, Number(g[0]), 0));
    return { exec: Number(e[0]), graph: Number(g[0]) };
  }

  launchGraph(exec: number, stream: number): void {
    this.check("cuGraphLaunch", this.fns.cuGraphLaunch(exec, stream));
  }

  destroyGraph(g: { exec: number; graph: number }): void {
    this.check("cuGraphExecDestroy", this.fns.cuGraphExecDestroy(g.exec));
    this.check("cuGraphDestroy", this.fns.cuGraphDestroy(g.graph));
  }

  close(): void {
    if (this.context) {
      this.fns.cuDevicePrimaryCtxRelease_v2(this.device);
      this.context = 0;
    }
  }
}
