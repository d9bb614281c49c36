/**
 * The allow-list of pickle globals for PyTorch checkpoints (docs/clip-formats.md 2.5). Each entry
 * is an inert marker: a pure data constructor for REDUCE, a class marker for NEWOBJ, or a plain
 * marker (storage types). Anything else — builtins.eval, os.system, functools.partial, another
 * rebuilder — is refused with PICKLE_UNSAFE_GLOBAL naming it.
 */
import { fail } from "./errors.js";
import { PickleDict, type PickleGlobal, type PickleValue } from "./pickle-vm.js";
import { makeTensorRef, STORAGE_DTYPES } from "./torch-tensor.js";

function callable(qualifiedName: string, call: (args: readonly PickleValue[]) => PickleValue): PickleGlobal {
  return { kind: "callable", qualifiedName, call };
}

function firstArg(name: string, source: string) {
  return (args: readonly PickleValue[]): PickleValue => {
    if (args.length < 1) fail("PICKLE_MALFORMED", `${source}: ${name} called without arguments`, name);
    return args[0];
  };
}

/** The marker a storage type (torch.HalfStorage ...) resolves to. */
export interface StorageTypeMarker {
  readonly kind: "marker";
  readonly qualifiedName: string;
  readonly data: { storageType: string };
}

export function isStorageTypeMarker(value: unknown): value is StorageTypeMarker {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { kind?: unknown }).kind === "marker" &&
    typeof (value as { data?: { storageType?: unknown } }).data?.storageType === "string"
  );
}

/** Returns the allow-list resolver used by every PyTorch reader; `source` names the pickle in errors. */
export function torchGlobals(source: string): (module: string, name: string) => PickleGlobal {
  const rebuildTensor = (qualifiedName: string) =>
    callable(qualifiedName, (args) => makeTensorRef(args, source) as unknown as PickleValue);
  const table: Record<string, PickleGlobal> = {
    "torch._utils._rebuild_tensor_v2": rebuildTensor("torch._utils._rebuild_tensor_v2"),
    "torch._utils._rebuild_tensor": rebuildTensor("torch._utils._rebuild_tensor"),
    // nn.Parameter(data, requires_grad, hooks): the data tensor is all we keep.
    "torch._utils._rebuild_parameter": callable(
      "torch._utils._rebuild_parameter",
      firstArg("torch._utils._rebuild_parameter", source),
    ),
    "collections.OrderedDict": callable("collections.OrderedDict", (args) => {
      if (args.length !== 0 && !(Array.isArray(args[0]) && args[0].length === 0))
        fail(
          "PICKLE_MALFORMED",
          `${source}: collections.OrderedDict called with items (only empty is allowed)`,
          "collections.OrderedDict",
        );
      return new PickleDict(true);
    }),
    "torch.device": callable("torch.device", (args) => {
      if (typeof args[0] !== "string")
        fail("PICKLE_MALFORMED", `${source}: torch.device needs a string`, "torch.device");
      return args.length > 1 && typeof args[1] === "number" ? `${args[0]}:${args[1]}` : (args[0] as string);
    }),
    "torch.Size": callable("torch.Size", (args) => {
      if (!Array.isArray(args[0]))
        fail("PICKLE_MALFORMED", `${source}: torch.Size needs a tuple`, "torch.Size");
      return args[0];
    }),
    // Python 3 pickles bytes (protocol < 3) as _codecs.encode(text, "latin1"): map each char to a byte.
    "_codecs.encode": callable("_codecs.encode", (args) => {
      const [text, encoding] = args;
      if (typeof text !== "string" || (encoding !== "latin1" && encoding !== "latin-1"))
        fail(
          "PICKLE_UNSAFE_GLOBAL",
          `${source}: _codecs.encode is allowed only as (str, "latin1")`,
          "_codecs.encode",
        );
      const out = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) {
        const code = text.charCodeAt(i);
        if (code > 0xff)
          fail("PICKLE_MALFORMED", `${source}: latin1 bytes hold character ${code}`, "_codecs.encode");
        out[i] = code;
      }
      return out;
    }),
  };
  for (const helper of [
    "restore_type_tag",
    "build_intlist",
    "build_tensorlist",
    "build_doublelist",
    "build_boollist",
  ])
    table[`torch.jit._pickle.${helper}`] = callable(`torch.jit._pickle.${helper}`, firstArg(helper, source));

  return (module: string, name: string): PickleGlobal => {
    const qualifiedName = `${module}.${name}`;
    const known = table[qualifiedName];
    if (known) return known;
    // TorchScript module classes: attribute bags, never executed (their code/ lives elsewhere).
    if (module === "__torch__" || module.startsWith("__torch__.")) return { kind: "class", qualifiedName };
    if (module === "torch" && name.endsWith("Storage")) {
      if (!Object.hasOwn(STORAGE_DTYPES, name))
        fail(
          "TORCH_UNKNOWN_STORAGE",
          `${source}: storage type torch.${name} is not supported`,
          qualifiedName,
        );
      return { kind: "marker", qualifiedName, data: { storageType: name } } satisfies StorageTypeMarker;
    }
    return fail(
      "PICKLE_UNSAFE_GLOBAL",
      `${source}: global ${qualifiedName} is not on the allow-list; refusing to load (no code from the file runs)`,
      qualifiedName,
    );
  };
}
