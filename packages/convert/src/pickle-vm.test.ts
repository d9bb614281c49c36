import { isUnmaskError } from "@unmask/clip";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_PICKLE_LIMITS,
  PickleDict,
  PickleObject,
  type UnpickleOptions,
  unpickle,
} from "./pickle-vm.js";
import { PickleWriter, stateDictPickle } from "./testing/torch-writer.js";
import { torchGlobals } from "./torch-globals.js";
import type { StorageRef } from "./torch-tensor.js";

const fakeStorage = (key: string, numel: number): StorageRef => ({
  kind: "torch-storage",
  key,
  dtype: "F16",
  numel,
  bytes: { byteLength: numel * 2, read: async () => new Uint8Array(0) },
});

const options = (extra: Partial<UnpickleOptions> = {}): UnpickleOptions => ({
  source: "test.pkl",
  resolveGlobal: torchGlobals("test.pkl"),
  persistentLoad: (pid) => fakeStorage(String((pid as unknown[])[2]), Number((pid as unknown[])[4])) as never,
  ...extra,
});

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (isUnmaskError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe("unpickle: values", () => {
  it("reads scalars, strings, tuples, lists and dicts", () => {
    const w = new PickleWriter().proto(2).emptyDict().mark();
    w.str("a").int(7);
    w.str("b").int(300);
    w.str("c").int(-5);
    w.str("d").int(2n ** 70n);
    w.str("e").bool(true);
    w.str("f").none();
    w.str("g").mark().int(1).int(2).tuple();
    w.str("h").emptyList().mark().str("x").str("y").appends();
    w.setitems().stop();
    const { value } = unpickle(w.bytes(), options());
    expect(value).toBeInstanceOf(PickleDict);
    const d = (value as PickleDict).entries;
    expect(d.get("a")).toBe(7);
    expect(d.get("b")).toBe(300);
    expect(d.get("c")).toBe(-5);
    expect(d.get("d")).toBe(2n ** 70n);
    expect(d.get("e")).toBe(true);
    expect(d.get("f")).toBe(null);
    expect(d.get("g")).toEqual([1, 2]);
    expect(Object.isFrozen(d.get("g"))).toBe(true);
    expect(d.get("h")).toEqual(["x", "y"]);
  });

  it("builds a state dict of tensor references with OrderedDict metadata", () => {
    const bytes = stateDictPickle([
      { name: "w", storageKey: "0", dtype: "F16", shape: [2, 3] },
      { name: "b", storageKey: "1", dtype: "F16", shape: [3] },
    ]);
    const { value, end } = unpickle(bytes, options());
    expect(end).toBe(bytes.byteLength);
    const dict = value as PickleDict;
    expect(dict.ordered).toBe(true);
    expect(dict.state).toBeInstanceOf(PickleDict);
    const w = dict.entries.get("w") as unknown as { shape: number[]; stride: number[]; storage: StorageRef };
    expect(w.shape).toEqual([2, 3]);
    expect(w.stride).toEqual([3, 1]);
    expect(w.storage.key).toBe("0");
  });

  it("builds TorchScript attribute bags through NEWOBJ + BUILD", () => {
    const w = new PickleWriter().proto(2);
    w.global("__torch__.model.___torch_mangle_3", "Block").emptyTuple().newobj();
    w.emptyDict().mark().str("training").bool(false).setitems().build().stop();
    const { value } = unpickle(w.bytes(), options());
    expect(value).toBeInstanceOf(PickleObject);
    expect((value as PickleObject).className).toBe("__torch__.model.___torch_mangle_3.Block");
    expect((value as PickleObject).attributes?.entries.get("training")).toBe(false);
  });

  it("decodes Python bytes pickled as _codecs.encode(str, 'latin1')", () => {
    const w = new PickleWriter()
      .proto(2)
      .global("_codecs", "encode")
      .str("\u00ff\u0000\u0080A")
      .str("latin1");
    w.raw(0x86).reduce().stop();
    expect(unpickle(w.bytes(), options()).value).toEqual(Uint8Array.of(0xff, 0, 0x80, 0x41));
  });

  it("accepts protocol-4 framing: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL", () => {
    const w = new PickleWriter().proto(4).raw(0x95, new Uint8Array(8));
    w.raw(0x8c, 11, new TextEncoder().encode("collections")).raw(0x94);
    w.raw(0x8c, 11, new TextEncoder().encode("OrderedDict")).raw(0x94).raw(0x93).raw(0x94);
    w.emptyTuple().reduce().stop();
    expect(unpickle(w.bytes(), options()).value).toBeInstanceOf(PickleDict);
  });
});

describe("unpickle: hostile input", () => {
  const evil = (module: string, name: string) =>
    new PickleWriter().proto(2).global(module, name).str("echo pwned").raw(0x85).reduce().stop().bytes();

  it.each([
    ["os", "system"],
    ["builtins", "eval"],
    ["builtins", "exec"],
    ["builtins", "getattr"],
    ["builtins", "__import__"],
    ["posix", "system"],
    ["subprocess", "Popen"],
    ["functools", "partial"],
    ["torch._utils", "_rebuild_qtensor"],
    ["torch", "load"],
  ])("refuses the global %s.%s with PICKLE_UNSAFE_GLOBAL naming it", (module, name) => {
    let caught: unknown;
    try {
      unpickle(evil(module, name), options());
    } catch (error) {
      caught = error;
    }
    expect(isUnmaskError(caught, "PICKLE_UNSAFE_GLOBAL")).toBe(true);
    expect((caught as Error).message).toContain(`${module}.${name}`);
  });

  it("refuses STACK_GLOBAL to a forbidden global", () => {
    const w = new PickleWriter().proto(4).raw(0x8c, 8, new TextEncoder().encode("builtins"));
    w.raw(0x8c, 4, new TextEncoder().encode("eval")).raw(0x93).stop();
    expect(codeOf(() => unpickle(w.bytes(), options()))).toBe("PICKLE_UNSAFE_GLOBAL");
  });

  it.each([
    ["INST", [0x69, ...new TextEncoder().encode("os\nsystem\n")]],
    ["OBJ", [0x28, 0x6f]],
    ["EXT1", [0x82, 1]],
    ["EXT2", [0x83, 1, 0]],
    ["EXT4", [0x84, 1, 0, 0, 0]],
    ["NEWOBJ_EX", [0x92]],
  ])("refuses opcode %s with PICKLE_FORBIDDEN_OPCODE naming it", (name, ops) => {
    const bytes = new PickleWriter()
      .proto(2)
      .raw(Uint8Array.from(ops as number[]))
      .stop()
      .bytes();
    let caught: unknown;
    try {
      unpickle(bytes, options());
    } catch (error) {
      caught = error;
    }
    expect(isUnmaskError(caught, "PICKLE_FORBIDDEN_OPCODE")).toBe(true);
    expect((caught as Error).message).toContain(name);
  });

  it("refuses unknown opcodes", () => {
    expect(codeOf(() => unpickle(Uint8Array.of(0x80, 2, 0xfe, 0x2e), options()))).toBe(
      "PICKLE_UNKNOWN_OPCODE",
    );
  });

  it("refuses REDUCE on a class, NEWOBJ with arguments, NEWOBJ on a callable, BUILD on a list", () => {
    const reduceOnClass = new PickleWriter().proto(2).global("__torch__.m", "M").emptyTuple().reduce().stop();
    expect(codeOf(() => unpickle(reduceOnClass.bytes(), options()))).toBe("PICKLE_UNSAFE_GLOBAL");
    const newobjArgs = new PickleWriter()
      .proto(2)
      .global("__torch__.m", "M")
      .mark()
      .int(1)
      .tuple()
      .newobj()
      .stop();
    expect(codeOf(() => unpickle(newobjArgs.bytes(), options()))).toBe("PICKLE_MALFORMED");
    const newobjCallable = new PickleWriter()
      .proto(2)
      .global("collections", "OrderedDict")
      .emptyTuple()
      .newobj()
      .stop();
    expect(codeOf(() => unpickle(newobjCallable.bytes(), options()))).toBe("PICKLE_UNSAFE_GLOBAL");
    const buildList = new PickleWriter().proto(2).emptyList().emptyDict().build().stop();
    expect(codeOf(() => unpickle(buildList.bytes(), options()))).toBe("PICKLE_MALFORMED");
  });

  it("refuses _codecs.encode with another encoding", () => {
    const w = new PickleWriter()
      .proto(2)
      .global("_codecs", "encode")
      .str("x")
      .str("rot13")
      .raw(0x86)
      .reduce()
      .stop();
    expect(codeOf(() => unpickle(w.bytes(), options()))).toBe("PICKLE_UNSAFE_GLOBAL");
  });

  it("refuses an unknown storage type with TORCH_UNKNOWN_STORAGE naming it", () => {
    const w = new PickleWriter().proto(2).global("torch", "QUInt8Storage").stop();
    let caught: unknown;
    try {
      unpickle(w.bytes(), options());
    } catch (error) {
      caught = error;
    }
    expect(isUnmaskError(caught, "TORCH_UNKNOWN_STORAGE")).toBe(true);
    expect((caught as Error).message).toContain("QUInt8Storage");
  });

  it("refuses stack underflow, a bad memo index and STOP with leftovers", () => {
    expect(codeOf(() => unpickle(Uint8Array.of(0x80, 2, 0x52, 0x2e), options()))).toBe("PICKLE_MALFORMED");
    expect(codeOf(() => unpickle(Uint8Array.of(0x80, 2, 0x68, 9, 0x2e), options()))).toBe("PICKLE_MALFORMED");
    expect(codeOf(() => unpickle(Uint8Array.of(0x80, 2, 0x4e, 0x4e, 0x2e), options()))).toBe(
      "PICKLE_MALFORMED",
    );
  });

  it("throws PICKLE_TRUNCATED for a valid pickle cut at any length", () => {
    const bytes = stateDictPickle([{ name: "w", storageKey: "0", dtype: "F16", shape: [4, 4] }]);
    for (let n = 0; n < bytes.byteLength; n++)
      expect(codeOf(() => unpickle(bytes.subarray(0, n), options()))).toBe("PICKLE_TRUNCATED");
  });

  it("caps string length: max passes, max + 1 is PICKLE_LIMIT", () => {
    const max = 16;
    const at = (n: number) => new PickleWriter().proto(2).str("x".repeat(n)).stop().bytes();
    expect(unpickle(at(max), options({ limits: { maxStringBytes: max } })).value).toBe("x".repeat(max));
    expect(codeOf(() => unpickle(at(max + 1), options({ limits: { maxStringBytes: max } })))).toBe(
      "PICKLE_LIMIT",
    );
  });

  it("caps the memo: max entries pass, max + 1 is PICKLE_LIMIT", () => {
    const withPuts = (n: number) => {
      const w = new PickleWriter().proto(2).none();
      for (let i = 0; i < n; i++) w.put();
      return w.stop().bytes();
    };
    expect(unpickle(withPuts(8), options({ limits: { maxMemoEntries: 8 } })).value).toBe(null);
    expect(codeOf(() => unpickle(withPuts(9), options({ limits: { maxMemoEntries: 8 } })))).toBe(
      "PICKLE_LIMIT",
    );
  });

  it("caps MARK nesting: max passes, max + 1 is PICKLE_LIMIT", () => {
    const nested = (depth: number) => {
      const w = new PickleWriter().proto(2);
      for (let i = 0; i < depth; i++) w.mark();
      for (let i = 0; i < depth; i++) w.tuple();
      return w.stop().bytes();
    };
    expect(unpickle(nested(10), options({ limits: { maxMarkDepth: 10 } })).value).toBeDefined();
    expect(codeOf(() => unpickle(nested(11), options({ limits: { maxMarkDepth: 10 } })))).toBe(
      "PICKLE_LIMIT",
    );
  });

  it("caps LONG1 size", () => {
    const w = new PickleWriter().proto(2).raw(0x8a, 33, new Uint8Array(33)).stop();
    expect(codeOf(() => unpickle(w.bytes(), options()))).toBe("PICKLE_LIMIT");
    expect(DEFAULT_PICKLE_LIMITS.maxLongBytes).toBe(32);
  });

  it("refuses BINPERSID without a storage resolver", () => {
    const w = new PickleWriter().proto(2).mark().str("storage").tuple().binpersid().stop();
    expect(codeOf(() => unpickle(w.bytes(), options({ persistentLoad: undefined })))).toBe(
      "PICKLE_MALFORMED",
    );
  });
});
