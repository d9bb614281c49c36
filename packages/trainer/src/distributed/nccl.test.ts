/**
 * NCCL bindings without a GPU: the NCCL_UNAVAILABLE path, and the koffi signatures checked
 * against a stand-in libnccl.so.2 compiled here from C with NCCL's exact prototypes (struct
 * ncclUniqueId by value, out-parameters, the PreMulSum scalar). Host memory stands in for device
 * memory; the stand-in's all-reduce acts as if every peer held the same values.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Nccl, ncclSearchDirs } from "./nccl.js";

const FAKE_NCCL_C = `
#include <stddef.h>
#include <stdint.h>
typedef struct { char internal[128]; } ncclUniqueId;
#define COMM ((void *)(uintptr_t)0xC0FFEE)
static int g_nranks = 0; static float g_scalars[16]; static int g_nops = 0; static int g_group = 0;
int ncclGetVersion(int *v) { *v = 22703; return 0; }
const char *ncclGetErrorString(int r) { return r == 4 ? "invalid argument (stand-in)" : "stand-in error"; }
const char *ncclGetLastError(void *comm) { return "last error detail"; }
int ncclGetUniqueId(ncclUniqueId *id) { for (int i = 0; i < 128; i++) id->internal[i] = (char)(i * 3 + 1); return 0; }
int ncclCommInitRank(void **comm, int nranks, ncclUniqueId id, int rank) {
  for (int i = 0; i < 128; i++) if ((unsigned char)id.internal[i] != (unsigned char)(i * 3 + 1)) return 4;
  if (rank < 0 || rank >= nranks) return 4;
  g_nranks = nranks; *comm = COMM; return 0; }
int ncclRedOpCreatePreMulSum(int *op, void *scalar, int dt, int residence, void *comm) {
  if (dt != 7 || residence != 1 || comm != COMM || g_nops == 16) return 4;
  g_scalars[g_nops] = *(float *)scalar; *op = 5 + g_nops++; return 0; }
int ncclRedOpDestroy(int op, void *comm) { return 0; }
int ncclAllReduce(const void *send, void *recv, size_t count, int dt, int op, void *comm, void *stream) {
  if (dt != 7 || comm != COMM || stream != (void *)(uintptr_t)0x5EED) return 4;
  const float *s = send; float *r = recv; float f;
  if (op == 0) f = (float)g_nranks; else if (op == 4) f = 1.0f; else if (op >= 5) f = g_scalars[op - 5] * g_nranks; else return 4;
  for (size_t i = 0; i < count; i++) r[i] = s[i] * f; return 0; }
int ncclGroupStart(void) { g_group++; return 0; }
int ncclGroupEnd(void) { g_group--; return g_group < 0 ? 5 : 0; }
int ncclCommDestroy(void *comm) { return comm == COMM ? 0 : 4; }
int ncclCommAbort(void *comm) { return 0; }
`;

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "unmask-nccl-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("NCCL_UNAVAILABLE", () => {
  it("lists every path tried when no folder holds libnccl", async () => {
    const error = await Nccl.open({ dirs: [join(dir, "a"), join(dir, "b")], loaderSearch: false }).catch(
      (e) => e,
    );
    expect(error.code).toBe("NCCL_UNAVAILABLE");
    for (const path of [
      join(dir, "a", "libnccl.so.2"),
      join(dir, "b", "libnccl.so.2"),
      join(dir, "a", "libnccl.so"),
    ])
      expect(error.message).toContain(`${path} (absent)`);
    expect(error.message).toContain("NCCL_HOME");
  });

  it("reports a file that is not a library, and the loader's own search", async () => {
    const bad = join(dir, "bad");
    execFileSync("mkdir", ["-p", bad]);
    writeFileSync(join(bad, "libnccl.so.2"), "not an ELF file");
    const error = await Nccl.open({
      dirs: [bad],
      names: ["libnccl.so.2"],
      env: {},
    }).catch((e) => e);
    expect(error.code).toBe("NCCL_UNAVAILABLE");
    expect(error.message).toMatch(new RegExp(`${join(bad, "libnccl.so.2")} \\((?!absent)`));
    expect(error.message).toContain("libnccl.so.2 via the loader");
  });

  it("searches UNMASK_NCCL_LIBRARY, NCCL_HOME, CUDA_PATH and LD_LIBRARY_PATH before the system folders", () => {
    const dirs = ncclSearchDirs({ NCCL_HOME: "/opt/nccl", CUDA_PATH: "/opt/cuda", LD_LIBRARY_PATH: "/x:/y" });
    expect(dirs.slice(0, 5)).toEqual(["/opt/nccl/lib", "/opt/cuda/lib64", "/opt/cuda/lib", "/x", "/y"]);
    expect(dirs).toContain("/usr/lib/x86_64-linux-gnu");
  });
});

describe("bindings against a stand-in libnccl.so.2", () => {
  let nccl: Nccl;
  beforeAll(async () => {
    const lib = join(dir, "fake");
    execFileSync("mkdir", ["-p", lib]);
    writeFileSync(join(lib, "fake-nccl.c"), FAKE_NCCL_C);
    execFileSync("gcc", [
      "-shared",
      "-fPIC",
      "-O1",
      "-o",
      join(lib, "libnccl.so.2"),
      join(lib, "fake-nccl.c"),
    ]);
    nccl = await Nccl.open({
      env: { UNMASK_NCCL_LIBRARY: join(lib, "libnccl.so.2") },
      dirs: [],
      loaderSearch: false,
    });
  });

  it("reads the version, makes a 128-byte unique id and passes it by value to ncclCommInitRank", () => {
    expect(nccl.version).toBe(22703);
    const id = nccl.getUniqueId();
    expect(id.length).toBe(128);
    expect(Array.from(id.subarray(0, 4))).toEqual([1, 4, 7, 10]);
    const comm = nccl.initRank(id, 4, 2);
    expect([comm.handle, comm.worldSize, comm.rank]).toEqual([0xc0ffee, 4, 2]);
    const tampered = Uint8Array.from(id);
    tampered[127] ^= 1; // the stand-in checks every byte arrived
    expect(() => nccl.initRank(tampered, 4, 2)).toThrow(
      /ncclCommInitRank\(rank 2 of 4\) failed: ncclInvalidArgument/,
    );
    expect(() => nccl.initRank(new Uint8Array(64), 4, 2)).toThrow(/128 bytes/);
    comm.destroy();
  });

  it("all-reduces fp32 with the mean (ncclAvg), a sum, and a pre-multiplied sum for unequal shards", () => {
    const comm = nccl.initRank(nccl.getUniqueId(), 4, 0);
    const values = new Float32Array([1, 2, 3, 4]);
    const ptr = Number(nccl.koffi.address(values));
    comm.allReduce({ send: ptr, recv: ptr, count: 4, stream: 0x5eed });
    expect(Array.from(values)).toEqual([1, 2, 3, 4]); // the mean of four equal copies
    comm.allReduce({ send: ptr, recv: ptr, count: 4, stream: 0x5eed, weight: 0.5 });
    expect(Array.from(values)).toEqual([2, 4, 6, 8]); // 4 ranks x 0.5
    comm.allReduce({ send: ptr, recv: ptr, count: 4, stream: 0x5eed, weight: 0.5 }); // the op is reused
    comm.allReduce({ send: ptr, recv: ptr, count: 2, stream: 0x5eed, weight: 1 });
    expect(Array.from(values)).toEqual([16, 32, 12, 16]);
    comm.allReduce({ send: ptr, recv: ptr, count: 0, stream: 0 }); // nothing to do: no call
    expect(() => comm.allReduce({ send: ptr, recv: ptr, count: 4, stream: 1 })).toThrow(
      /ncclAllReduce failed: ncclInvalidArgument \(4\): invalid argument \(stand-in\) \(last error detail\)/,
    );
    comm.destroy();
    expect(() => comm.allReduce({ send: ptr, recv: ptr, count: 4, stream: 0x5eed })).toThrow(/destroyed/);
  });

  it("checks group calls", () => {
    nccl.groupStart();
    nccl.groupEnd();
    expect(() => nccl.groupEnd()).toThrow(/ncclGroupEnd failed: ncclInvalidUsage \(5\)/);
  });
});
