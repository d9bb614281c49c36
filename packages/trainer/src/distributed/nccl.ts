/**
 * NCCL (libnccl.so.2) through koffi: the communicator and the all-reduce of fp32 gradients on
 * device pointers. Loaded lazily: importing this module touches no native code, and a machine
 * without NCCL gets one typed error, NCCL_UNAVAILABLE, listing every path tried.
 *
 * Search order (as engines/cuda/libraries.ts does for libcuda): UNMASK_NCCL_LIBRARY (a file),
 * NCCL_HOME/lib, CUDA_PATH/lib64 and /lib, each LD_LIBRARY_PATH entry, the usual system and
 * toolkit folders, then the bare soname (the dynamic loader's own search).
 *
 * C API used (nccl.h; enum values are part of NCCL's ABI):
 *   ncclResult_t ncclGetVersion(int *version)
 *   ncclResult_t ncclGetUniqueId(ncclUniqueId *id)             typedef struct { char internal[128]; } ncclUniqueId
 *   ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank)   id by value
 *   ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t)
 *   ncclResult_t ncclRedOpCreatePreMulSum(ncclRedOp_t *op, void *scalar, ncclDataType_t, ncclScalarResidence_t, ncclComm_t)
 *   ncclResult_t ncclRedOpDestroy(ncclRedOp_t op, ncclComm_t comm)
 *   ncclResult_t ncclGroupStart(void), ncclGroupEnd(void)
 *   ncclResult_t ncclCommDestroy(ncclComm_t), ncclCommAbort(ncclComm_t)
 *   const char *ncclGetErrorString(ncclResult_t), const char *ncclGetLastError(ncclComm_t)
 * Handles (ncclComm_t, cudaStream_t = CUstream) and device pointers are plain numbers, as in
 * engines/cuda/driver.ts.
 */
import { join } from "node:path";
import { UnmaskError } from "@unmask/clip";
import { type Koffi, type Library, librarySearchDirs, loadFirstLibrary } from "../native-library.js";
import { NCCL_UNIQUE_ID_BYTES } from "./rendezvous.js";

const NCCL_NAMES = ["libnccl.so.2", "libnccl.so"];
const STANDARD_DIRS = [
  "/usr/lib/x86_64-linux-gnu",
  "/usr/local/cuda/lib64",
  "/usr/local/cuda/targets/x86_64-linux/lib",
  "/usr/local/nccl/lib",
  "/usr/lib64",
  "/usr/local/lib",
];

export const NCCL_FLOAT32 = 7;
export const NCCL_SUM = 0;
/** ncclAvg (NCCL >= 2.10): sum, then scale by 1 / worldSize. */
export const NCCL_AVG = 4;
const NCCL_SCALAR_HOST_IMMEDIATE = 1;
/** ncclInProgress is only returned by non-blocking communicators, which are not used here. */
const RESULT_NAMES = [
  "ncclSuccess",
  "ncclUnhandledCudaError",
  "ncclSystemError",
  "ncclInternalError",
  "ncclInvalidArgument",
  "ncclInvalidUsage",
  "ncclRemoteError",
  "ncclInProgress",
];

// biome-ignore lint/suspicious/noExplicitAny: koffi functions are variadic by declaration
type Fn = (...args: any[]) => any;

export interface OpenNcclOptions {
  /** Folders to search instead of the default list (tests). */
  dirs?: string[];
  /** sonames to look for (default libnccl.so.2, libnccl.so). */
  names?: string[];
  /** Also ask the dynamic loader for the bare soname (default true). */
  loaderSearch?: boolean;
  env?: Record<string, string | undefined>;
}

/** The folders searched for libnccl, in order. */
export function ncclSearchDirs(env: Record<string, string | undefined> = process.env): string[] {
  return librarySearchDirs(env, {
    first: env.NCCL_HOME ? [join(env.NCCL_HOME, "lib")] : [],
    last: STANDARD_DIRS,
  });
}

async function loadKoffi(): Promise<Koffi> {
  try {
    return (await import("koffi")).default as Koffi;
  } catch (cause) {
    throw new UnmaskError("NCCL_UNAVAILABLE", `NCCL bindings need koffi's native module: ${String(cause)}`, {
      cause,
      subject: "koffi",
    });
  }
}

function openLibrary(koffi: Koffi, options: OpenNcclOptions): Library {
  const env = options.env ?? process.env;
  const names = options.names ?? NCCL_NAMES;
  const paths: string[] = [];
  if (env.UNMASK_NCCL_LIBRARY) paths.push(env.UNMASK_NCCL_LIBRARY);
  for (const dir of options.dirs ?? ncclSearchDirs(env))
    for (const name of names) paths.push(join(dir, name));
  return loadFirstLibrary(koffi, {
    paths,
    names,
    loaderSearch: options.loaderSearch,
    notFound(tried) {
      throw new UnmaskError(
        "NCCL_UNAVAILABLE",
        `NCCL (libnccl.so.2) not found; tried: ${tried.join("; ")}. Install NCCL (apt libnccl2, or pip nvidia-nccl-cu12 / nvidia-nccl-cu13 and point UNMASK_NCCL_LIBRARY at its libnccl.so.2), set NCCL_HOME, CUDA_PATH or LD_LIBRARY_PATH, or train on one GPU.`,
        { subject: "libnccl.so.2" },
      );
    },
  });
}

const uniqueIdTypes = new WeakMap<Koffi, unknown>();

/** The loaded library. One per process. */
export class Nccl {
  private readonly fns: Record<string, Fn> = {};
  /** NCCL_VERSION_CODE of the loaded library, e.g. 22703 for 2.27.3. */
  readonly version: number;

  private constructor(
    readonly koffi: Koffi,
    lib: Library,
  ) {
    if (!uniqueIdTypes.has(koffi))
      uniqueIdTypes.set(
        koffi,
        koffi.struct("ncclUniqueId", { internal: koffi.array("uint8_t", NCCL_UNIQUE_ID_BYTES, "Typed") }),
      );
    const declare = (name: string, proto: string) => {
      this.fns[name] = lib.func(proto.replace("NAME", name)) as Fn;
    };
    declare("ncclGetErrorString", "const char *NAME(int result)");
    declare("ncclGetVersion", "int NAME(_Out_ int *version)");
    declare("ncclGetUniqueId", "int NAME(_Out_ ncclUniqueId *id)");
    declare("ncclCommInitRank", "int NAME(_Out_ uint64_t *comm, int nranks, ncclUniqueId id, int rank)");
    declare(
      "ncclAllReduce",
      "int NAME(uint64_t send, uint64_t recv, size_t count, int datatype, int op, uint64_t comm, uint64_t stream)",
    );
    declare(
      "ncclRedOpCreatePreMulSum",
      "int NAME(_Out_ int *op, void *scalar, int datatype, int residence, uint64_t comm)",
    );
    declare("ncclRedOpDestroy", "int NAME(int op, uint64_t comm)");
    declare("ncclGroupStart", "int NAME()");
    declare("ncclGroupEnd", "int NAME()");
    declare("ncclCommDestroy", "int NAME(uint64_t comm)");
    declare("ncclCommAbort", "int NAME(uint64_t comm)");
    try {
      declare("ncclGetLastError", "const char *NAME(uint64_t comm)"); // NCCL >= 2.13
    } catch {
      // older libraries: errors carry the result string only
    }
    const version = [0];
    this.check("ncclGetVersion", this.fns.ncclGetVersion(version));
    this.version = version[0];
  }

  /**
   * Finds and opens libnccl. @throws UnmaskError NCCL_UNAVAILABLE listing every path tried
   */
  static async open(options: OpenNcclOptions = {}): Promise<Nccl> {
    const koffi = await loadKoffi();
    return new Nccl(koffi, openLibrary(koffi, options));
  }

  /** Throws UnmaskError NCCL_ERROR naming `call` when `result` is not ncclSuccess. */
  check(call: string, result: number, comm = 0): void {
    if (result === 0) return;
    let text = "";
    let detail = "";
    try {
      text = this.fns.ncclGetErrorString(result) ?? "";
      if (comm && this.fns.ncclGetLastError) detail = this.fns.ncclGetLastError(comm) ?? "";
    } catch {
      // the lookup failing must not hide the original error
    }
    throw new UnmaskError(
      "NCCL_ERROR",
      `${call} failed: ${RESULT_NAMES[result] ?? "ncclResult"} (${result}): ${text}${detail ? ` (${detail})` : ""}`,
      { subject: call },
    );
  }

  /** A fresh ncclUniqueId (rank 0 makes it, rendezvous.ts hands it to the others). */
  getUniqueId(): Uint8Array {
    const id: { internal?: Uint8Array } = {};
    this.check("ncclGetUniqueId", this.fns.ncclGetUniqueId(id));
    return Uint8Array.from(id.internal as Uint8Array);
  }

  /**
   * Joins the communicator (blocks until all `worldSize` ranks have called it). The current
   * CUDA context's device is the communicator's device.
   */
  initRank(uniqueId: Uint8Array, worldSize: number, rank: number): NcclCommunicator {
    if (uniqueId.length !== NCCL_UNIQUE_ID_BYTES)
      throw new UnmaskError(
        "BAD_UNIQUE_ID",
        `an ncclUniqueId has ${NCCL_UNIQUE_ID_BYTES} bytes, got ${uniqueId.length}`,
        {
          subject: "ncclUniqueId",
        },
      );
    const comm = [0];
    this.check(
      `ncclCommInitRank(rank ${rank} of ${worldSize})`,
      this.fns.ncclCommInitRank(comm, worldSize, { internal: uniqueId }, rank),
    );
    return new NcclCommunicator(this, this.fns, Number(comm[0]), worldSize, rank);
  }

  /** Collectives between groupStart and groupEnd are launched as one (the per-tensor fallback). */
  groupStart(): void {
    this.check("ncclGroupStart", this.fns.ncclGroupStart());
  }

  groupEnd(): void {
    this.check("ncclGroupEnd", this.fns.ncclGroupEnd());
  }
}

export interface AllReduceArgs {
  /** Device pointers (equal for in place), `count` fp32 values each. */
  send: number;
  recv: number;
  count: number;
  /** CUstream the collective is enqueued on. */
  stream: number;
  /**
   * Factor each rank's values are multiplied by before the sum (default 1 / worldSize: the
   * mean). Unequal shards pass their shard / global batch (sharding.ts reduceWeight).
   */
  weight?: number;
}

export class NcclCommunicator {
  private readonly preMulOps = new Map<number, number>();
  private destroyed = false;

  constructor(
    private readonly nccl: Nccl,
    private readonly fns: Record<string, Fn>,
    readonly handle: number,
    readonly worldSize: number,
    readonly rank: number,
  ) {}

  /**
   * Enqueues an fp32 all-reduce on `stream`: sum over ranks of weight x values. The mean
   * (weight 1 / worldSize) uses ncclAvg; other weights a PreMulSum operator made once per weight.
   * Results are identical on every rank (NCCL's ring and tree both broadcast the final sums).
   */
  allReduce(args: AllReduceArgs): void {
    if (this.destroyed) throw new UnmaskError("NCCL_ERROR", "all-reduce on a destroyed communicator");
    if (!(Number.isSafeInteger(args.count) && args.count >= 0))
      throw new UnmaskError("BAD_OPTION", `all-reduce count ${args.count}`, { subject: "count" });
    if (args.count === 0) return;
    const weight = args.weight ?? 1 / this.worldSize;
    const op = weight === 1 / this.worldSize ? NCCL_AVG : weight === 1 ? NCCL_SUM : this.preMulSum(weight);
    this.nccl.check(
      "ncclAllReduce",
      this.fns.ncclAllReduce(args.send, args.recv, args.count, NCCL_FLOAT32, op, this.handle, args.stream),
      this.handle,
    );
  }

  private preMulSum(weight: number): number {
    let op = this.preMulOps.get(weight);
    if (op === undefined) {
      const out = [0];
      // host-immediate: NCCL copies the scalar at creation, so a CUDA graph can replay the op
      this.nccl.check(
        "ncclRedOpCreatePreMulSum",
        this.fns.ncclRedOpCreatePreMulSum(
          out,
          Float32Array.of(weight),
          NCCL_FLOAT32,
          NCCL_SCALAR_HOST_IMMEDIATE,
          this.handle,
        ),
        this.handle,
      );
      op = out[0];
      this.preMulOps.set(weight, op);
    }
    return op;
  }

  /** Runs `enqueue` (several collectives) between ncclGroupStart and ncclGroupEnd: one launch. */
  group(enqueue: () => void): void {
    this.nccl.groupStart();
    try {
      enqueue();
    } finally {
      this.nccl.groupEnd();
    }
  }

  /** Frees the communicator after its work is done (collective: every rank calls it). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const op of this.preMulOps.values()) this.fns.ncclRedOpDestroy(op, this.handle);
    this.nccl.check("ncclCommDestroy", this.fns.ncclCommDestroy(this.handle));
  }

  /** Tears the communicator down without waiting for peers (a peer died: pending collectives would hang). */
  abort(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.fns.ncclCommAbort(this.handle);
  }
}
