/**
 * A safe pickle virtual machine (docs/clip-formats.md 2.5).
 *
 * Threat model: the pickle is untrusted and pickle is a program. This VM never imports or calls
 * anything: GLOBAL / STACK_GLOBAL resolve through a caller-supplied allow-list to inert markers,
 * REDUCE runs only a marker's own pure data constructor, NEWOBJ builds only an attribute bag for
 * an allow-listed class with no arguments, and BUILD only stores a dict. Opcodes that can reach
 * arbitrary code (INST, OBJ, EXT1/2/4, NEWOBJ_EX) are refused by name; any byte that is not an
 * opcode we know is refused too. String length, memo size, stack size and MARK depth are capped,
 * and every read checks the bytes remaining first.
 *
 * The opcode set is what PyTorch's pickler and Python's protocol-2 pickler emit for state dicts,
 * plus protocol-4 framing (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, BINBYTES, SHORT_BINBYTES).
 */
import { fail } from "./errors.js";

/** A value the VM produces. Tuples are frozen arrays, lists plain arrays. */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PickleDict
  | PickleObject
  | PickleGlobal
  | { readonly kind: string };

export type PickleKey = string | number | bigint | boolean | null;

/** A dict or OrderedDict. `state` holds what a BUILD set on it (OrderedDict's `_metadata`). */
export class PickleDict {
  readonly entries = new Map<PickleKey, PickleValue>();
  state: PickleValue | undefined;
  constructor(readonly ordered = false) {}
}

/** An instance of an allow-listed class (a TorchScript module): a bag of attributes. */
export class PickleObject {
  attributes: PickleDict | null = null;
  constructor(readonly className: string) {}
}

/** What an allow-listed global resolves to. Nothing here can run code from the file. */
export type PickleGlobal =
  | {
      readonly kind: "callable";
      readonly qualifiedName: string;
      /** A pure constructor of inert data from the REDUCE arguments; throws a typed error on bad input. */
      call(args: readonly PickleValue[]): PickleValue;
    }
  | { readonly kind: "class"; readonly qualifiedName: string }
  | { readonly kind: "marker"; readonly qualifiedName: string; readonly data?: unknown };

export interface PickleLimits {
  /** Longest string or bytes object. Mask checkpoints pack a ViT-L block into ~1 MB strings. */
  maxStringBytes: number;
  /** Memo entries (a ViT-L TorchScript data.pkl uses ~3,000). */
  maxMemoEntries: number;
  /** Values on the stack at once. */
  maxStackItems: number;
  /** Nested MARKs (tuple/list/dict literals inside each other). */
  maxMarkDepth: number;
  /** Big-integer bytes in LONG1 (a legacy magic number uses 10). */
  maxLongBytes: number;
}

export const DEFAULT_PICKLE_LIMITS: PickleLimits = {
  maxStringBytes: 256 * 1024 * 1024,
  maxMemoEntries: 1_000_000,
  maxStackItems: 10_000_000,
  maxMarkDepth: 1_000,
  maxLongBytes: 32,
};

export interface UnpickleOptions {
  /** Names the pickle in error messages (e.g. "ViT-B-32.pt:ViT-B-32/data.pkl"). */
  source: string;
  /** The allow-list: returns a marker, or throws PICKLE_UNSAFE_GLOBAL naming the global. */
  resolveGlobal: (module: string, name: string) => PickleGlobal;
  /** Resolves BINPERSID ids (storage records); without it BINPERSID is refused. */
  persistentLoad?: (pid: PickleValue) => PickleValue;
  limits?: Partial<PickleLimits>;
}

export interface UnpickleResult {
  value: PickleValue;
  /** Offset just past STOP (the legacy format concatenates several pickles). */
  end: number;
}

const OP = {
  PROTO: 0x80,
  STOP: 0x2e,
  MARK: 0x28,
  POP: 0x30,
  POP_MARK: 0x31,
  GLOBAL: 0x63,
  STACK_GLOBAL: 0x93,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  MEMOIZE: 0x94,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  EMPTY_DICT: 0x7d,
  EMPTY_LIST: 0x5d,
  EMPTY_TUPLE: 0x29,
  TUPLE: 0x74,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  LIST: 0x6c,
  DICT: 0x64,
  BINUNICODE: 0x58,
  SHORT_BINUNICODE: 0x8c,
  SHORT_BINSTRING: 0x55,
  BINBYTES: 0x42,
  SHORT_BINBYTES: 0x43,
  BININT: 0x4a,
  BININT1: 0x4b,
  BININT2: 0x4d,
  LONG1: 0x8a,
  BINFLOAT: 0x47,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  NONE: 0x4e,
  REDUCE: 0x52,
  BUILD: 0x62,
  NEWOBJ: 0x81,
  SETITEM: 0x73,
  SETITEMS: 0x75,
  APPEND: 0x61,
  APPENDS: 0x65,
  BINPERSID: 0x51,
  FRAME: 0x95,
} as const;

/** Opcodes refused by name: each can construct arbitrary objects or call arbitrary code. */
const FORBIDDEN: Record<number, string> = {
  105: "INST",
  111: "OBJ",
  130: "EXT1",
  131: "EXT2",
  132: "EXT4",
  146: "NEWOBJ_EX",
};

const MARK = Symbol("mark");

/** Tuples are frozen arrays, so APPEND can tell them from lists. */
function tuple(items: PickleValue[]): PickleValue[] {
  return Object.freeze(items) as PickleValue[];
}
type StackItem = PickleValue | typeof MARK;

const utf8 = new TextDecoder("utf-8", { fatal: true });

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

/** Runs one pickle from `bytes[start]` to its STOP. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions, start = 0): UnpickleResult {
  const limits = { ...DEFAULT_PICKLE_LIMITS, ...options.limits };
  const src = options.source;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: StackItem[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PickleValue>();
  let pos = start;

  const need = (n: number, what: string) => {
    if (pos + n > bytes.byteLength)
      fail("PICKLE_TRUNCATED", `${src}: pickle ends inside ${what} at offset ${pos} (needs ${n} bytes)`, src);
  };
  const malformed = (message: string): never =>
    fail("PICKLE_MALFORMED", `${src}: ${message} at offset ${pos}`, src);
  const push = (value: PickleValue) => {
    if (stack.length >= limits.maxStackItems)
      fail("PICKLE_LIMIT", `${src}: stack exceeds ${limits.maxStackItems} items at offset ${pos}`, src);
    stack.push(value);
  };
  const pop = (): PickleValue => {
    const value = stack.pop();
    if (value === undefined) malformed("stack underflow");
    if (value === MARK) malformed("unexpected MARK on the stack");
    return value as PickleValue;
  };
  const top = (): PickleValue => {
    const value = stack[stack.length - 1];
    if (value === undefined || value === MARK) malformed("stack underflow");
    return value as PickleValue;
  };
  const popMark = (): PickleValue[] => {
    const at = marks.pop();
    if (at === undefined) malformed("no MARK to pop to");
    const items = stack.splice(at as number) as PickleValue[];
    items.shift(); // the MARK itself
    return items;
  };
  /** One byte of an opcode's argument (a length or a small value), checked and consumed. */
  const u8 = (what: string): number => {
    need(1, what);
    return bytes[pos++];
  };
  /** A little-endian uint32 argument, checked and consumed. */
  const u32 = (what: string): number => {
    need(4, what);
    const value = view.getUint32(pos, true);
    pos += 4;
    return value;
  };
  /** A string or bytes payload of `n` bytes: within the limit and inside the pickle. */
  const needPayload = (n: number, what: string) => {
    if (n > limits.maxStringBytes)
      fail(
        "PICKLE_LIMIT",
        `${src}: ${what} of ${n} bytes exceeds the ${limits.maxStringBytes}-byte limit at offset ${pos}`,
        src,
      );
    need(n, what);
  };
  const readString = (n: number, what: string): string => {
    needPayload(n, what);
    let text: string;
    try {
      text = utf8.decode(bytes.subarray(pos, pos + n));
    } catch {
      malformed(`${what} is not valid UTF-8`);
    }
    pos += n;
    return text!;
  };
  const readBytes = (n: number, what: string): Uint8Array => {
    needPayload(n, what);
    const out = bytes.slice(pos, pos + n);
    pos += n;
    return out;
  };
  const readLine = (what: string): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0 || end - pos > 4096)
      fail("PICKLE_TRUNCATED", `${src}: ${what} has no newline at offset ${pos}`, src);
    const text = new TextDecoder("latin1").decode(bytes.subarray(pos, end));
    pos = end + 1;
    return text;
  };
  const memoPut = (index: number, value: PickleValue) => {
    if (!memo.has(index) && memo.size >= limits.maxMemoEntries)
      fail("PICKLE_LIMIT", `${src}: memo exceeds ${limits.maxMemoEntries} entries at offset ${pos}`, src);
    memo.set(index, value);
  };
  const memoGet = (index: number): PickleValue => {
    const value = memo.get(index);
    if (value === undefined) malformed(`memo index ${index} was never stored`);
    return value as PickleValue;
  };
  const resolve = (module: string, name: string) => {
    const global = options.resolveGlobal(module, name);
    return global;
  };
  const asKey = (key: PickleValue): PickleKey => {
    if (key === null || ["string", "number", "bigint", "boolean"].includes(typeof key))
      return key as PickleKey;
    return malformed("dict key is not a string, number or boolean");
  };
  const setItems = (dict: PickleValue, items: PickleValue[]) => {
    if (!(dict instanceof PickleDict)) malformed("SETITEM(S) target is not a dict");
    if (items.length % 2 !== 0) malformed("SETITEMS has an odd number of items");
    for (let i = 0; i < items.length; i += 2) (dict as PickleDict).entries.set(asKey(items[i]), items[i + 1]);
  };
  const appendItems = (list: PickleValue, items: PickleValue[]) => {
    if (!Array.isArray(list) || Object.isFrozen(list)) malformed("APPEND(S) target is not a list");
    (list as PickleValue[]).push(...items);
  };

  while (true) {
    need(1, "an opcode");
    const opAt = pos;
    const op = bytes[pos++];
    switch (op) {
      case OP.PROTO: {
        const version = u8("PROTO");
        if (version > 5) malformed(`unsupported pickle protocol ${version}`);
        break;
      }
      case OP.FRAME:
        need(8, "FRAME");
        pos += 8; // framing is only a read-ahead hint
        break;
      case OP.STOP:
        if (stack.length !== 1 || marks.length !== 0)
          malformed(`STOP with ${stack.length} values and ${marks.length} open MARKs on the stack`);
        return { value: pop(), end: pos };
      case OP.MARK:
        if (marks.length >= limits.maxMarkDepth)
          fail("PICKLE_LIMIT", `${src}: MARK nesting exceeds ${limits.maxMarkDepth} at offset ${opAt}`, src);
        marks.push(stack.length);
        stack.push(MARK);
        break;
      case OP.POP:
        if (stack.length > 0 && stack[stack.length - 1] === MARK) {
          stack.pop();
          marks.pop();
        } else pop();
        break;
      case OP.POP_MARK:
        popMark();
        break;
      case OP.GLOBAL: {
        const module = readLine("GLOBAL module");
        const name = readLine("GLOBAL name");
        push(resolve(module, name));
        break;
      }
      case OP.STACK_GLOBAL: {
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string")
          malformed("STACK_GLOBAL needs two strings");
        push(resolve(module as string, name as string));
        break;
      }
      case OP.BINPUT:
        memoPut(u8("BINPUT"), top());
        break;
      case OP.LONG_BINPUT:
        need(4, "LONG_BINPUT");
        memoPut(view.getUint32(pos, true), top());
        pos += 4;
        break;
      case OP.MEMOIZE:
        memoPut(memo.size, top());
        break;
      case OP.BINGET:
        push(memoGet(u8("BINGET")));
        break;
      case OP.LONG_BINGET:
        need(4, "LONG_BINGET");
        push(memoGet(view.getUint32(pos, true)));
        pos += 4;
        break;
      case OP.EMPTY_DICT:
        push(new PickleDict());
        break;
      case OP.DICT: {
        const dict = new PickleDict();
        setItems(dict, popMark());
        push(dict);
        break;
      }
      case OP.EMPTY_LIST:
        push([]);
        break;
      case OP.LIST:
        push(popMark());
        break;
      case OP.EMPTY_TUPLE:
        push(tuple([]));
        break;
      case OP.TUPLE:
        push(tuple(popMark()));
        break;
      case OP.TUPLE1: {
        const a = pop();
        push(tuple([a]));
        break;
      }
      case OP.TUPLE2: {
        const b = pop();
        const a = pop();
        push(tuple([a, b]));
        break;
      }
      case OP.TUPLE3: {
        const c = pop();
        const b = pop();
        const a = pop();
        push(tuple([a, b, c]));
        break;
      }
      case OP.BINUNICODE:
        push(readString(u32("BINUNICODE length"), "BINUNICODE string"));
        break;
      case OP.SHORT_BINUNICODE:
        push(readString(u8("SHORT_BINUNICODE length"), "SHORT_BINUNICODE string"));
        break;
      case OP.SHORT_BINSTRING: {
        const n = u8("SHORT_BINSTRING length");
        need(n, "SHORT_BINSTRING");
        push(new TextDecoder("latin1").decode(bytes.subarray(pos, pos + n)));
        pos += n;
        break;
      }
      case OP.BINBYTES:
        push(readBytes(u32("BINBYTES length"), "BINBYTES"));
        break;
      case OP.SHORT_BINBYTES:
        push(readBytes(u8("SHORT_BINBYTES length"), "SHORT_BINBYTES"));
        break;
      case OP.BININT:
        need(4, "BININT");
        push(view.getInt32(pos, true));
        pos += 4;
        break;
      case OP.BININT1:
        push(u8("BININT1"));
        break;
      case OP.BININT2:
        need(2, "BININT2");
        push(view.getUint16(pos, true));
        pos += 2;
        break;
      case OP.LONG1: {
        const n = u8("LONG1 length");
        if (n > limits.maxLongBytes)
          fail(
            "PICKLE_LIMIT",
            `${src}: LONG1 of ${n} bytes exceeds the ${limits.maxLongBytes}-byte limit at offset ${opAt}`,
            src,
          );
        need(n, "LONG1");
        let value = 0n;
        for (let i = n - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[pos + i]);
        if (n > 0 && bytes[pos + n - 1] & 0x80) value -= 1n << BigInt(8 * n);
        pos += n;
        push(
          value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
            ? Number(value)
            : value,
        );
        break;
      }
      case OP.BINFLOAT:
        need(8, "BINFLOAT");
        push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case OP.NEWTRUE:
        push(true);
        break;
      case OP.NEWFALSE:
        push(false);
        break;
      case OP.NONE:
        push(null);
        break;
      case OP.REDUCE: {
        const args = pop();
        const callable = pop() as PickleGlobal;
        if (!Array.isArray(args)) malformed("REDUCE arguments are not a tuple");
        if (
          typeof callable !== "object" ||
          callable === null ||
          (callable as PickleGlobal).kind !== "callable"
        )
          fail(
            "PICKLE_UNSAFE_GLOBAL",
            `${src}: REDUCE on ${describe(callable)} at offset ${opAt}: only allow-listed constructors may be called`,
            src,
          );
        push((callable as Extract<PickleGlobal, { kind: "callable" }>).call(args as PickleValue[]));
        break;
      }
      case OP.NEWOBJ: {
        const args = pop();
        const cls = pop() as PickleGlobal;
        if (typeof cls !== "object" || cls === null || (cls as PickleGlobal).kind !== "class")
          fail(
            "PICKLE_UNSAFE_GLOBAL",
            `${src}: NEWOBJ on ${describe(cls)} at offset ${opAt}: not an allow-listed class`,
            src,
          );
        if (!Array.isArray(args) || args.length !== 0)
          malformed(
            `NEWOBJ of ${(cls as PickleGlobal).qualifiedName} with arguments (only empty ones are allowed)`,
          );
        push(new PickleObject((cls as PickleGlobal).qualifiedName));
        break;
      }
      case OP.BUILD: {
        const state = pop();
        const target = top();
        if (target instanceof PickleObject) {
          if (!(state instanceof PickleDict)) malformed(`BUILD state of ${target.className} is not a dict`);
          target.attributes = state as PickleDict;
        } else if (target instanceof PickleDict) {
          target.state = state;
        } else malformed(`BUILD on ${describe(target)} (only module objects and dicts accept state)`);
        break;
      }
      case OP.SETITEM: {
        const value = pop();
        const key = pop();
        setItems(top(), [key, value]);
        break;
      }
      case OP.SETITEMS: {
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case OP.APPEND: {
        const value = pop();
        appendItems(top(), [value]);
        break;
      }
      case OP.APPENDS: {
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case OP.BINPERSID: {
        const pid = pop();
        if (!options.persistentLoad) malformed("BINPERSID in a pickle that may not reference storages");
        push(options.persistentLoad!(pid));
        break;
      }
      default: {
        const name = FORBIDDEN[op];
        if (name)
          fail(
            "PICKLE_FORBIDDEN_OPCODE",
            `${src}: opcode ${name} (${hex(op)}) at offset ${opAt} is refused: it can run code`,
            name,
          );
        fail("PICKLE_UNKNOWN_OPCODE", `${src}: unknown pickle opcode ${hex(op)} at offset ${opAt}`, hex(op));
      }
    }
  }
}

function describe(value: unknown): string {
  if (value === null) return "None";
  if (typeof value === "object" && "qualifiedName" in (value as object))
    return (value as { qualifiedName: string }).qualifiedName;
  if (Array.isArray(value)) return "a tuple/list";
  if (value instanceof PickleDict) return "a dict";
  if (value instanceof PickleObject) return value.className;
  return typeof value;
}
