/**
 * onnxruntime sessions for a model directory, created from graph bytes held in memory.
 *
 * The graphs' unmasked weights stay external data in model.safetensors: the session option
 * `session.model_external_initializers_file_folder_path` tells onnxruntime where the model lives
 * when it is loaded from a buffer, so those bytes are read from the file, never copied by us.
 * (onnxruntime-node 1.30's `externalData` option was tried and rejected: once given, every
 * external file must be supplied in memory, which would cost a full copy of the weights.)
 */
import { UnmaskError } from "@unmask/mask-format";
import * as ort from "onnxruntime-node";
import { ProtoWriter } from "./onnx/protobuf.js";

export type ExecutionProvider = "cpu" | "cuda";

export interface SessionSettings {
  executionProvider: ExecutionProvider;
  /** Threads per session for intra-op parallelism (onnxruntime default: physical cores). */
  intraOpNumThreads?: number;
}

const probed = new Map<ExecutionProvider, Promise<void>>();

/** A one-node graph (Identity on a float [1] input) used to check an execution provider loads. */
function probeGraph(): Uint8Array {
  const valueInfo = (name: string) =>
    new ProtoWriter()
      .string(1, name)
      .message(
        2,
        new ProtoWriter().message(
          1,
          new ProtoWriter()
            .varint(1, 1)
            .message(2, new ProtoWriter().message(1, new ProtoWriter().varint(1, 1))),
        ),
      );
  const node = new ProtoWriter().string(1, "x").string(2, "y").string(4, "Identity");
  const graph = new ProtoWriter()
    .message(1, node)
    .string(2, "probe")
    .message(11, valueInfo("x"))
    .message(12, valueInfo("y"));
  return new ProtoWriter()
    .varint(1, 8)
    .message(7, graph)
    .message(8, new ProtoWriter().string(1, "").varint(2, 17))
    .finish();
}

/**
 * Checks that `provider` can run in this onnxruntime-node install, once per process.
 * @throws UnmaskError EXECUTION_PROVIDER_UNAVAILABLE with the reason onnxruntime gives
 */
export function ensureExecutionProvider(provider: ExecutionProvider): Promise<void> {
  if (provider !== "cpu" && provider !== "cuda")
    return Promise.reject(
      new UnmaskError(
        "BAD_OPTION",
        `executionProvider must be "cpu" or "cuda", not ${JSON.stringify(provider)}`,
        {
          subject: "executionProvider",
        },
      ),
    );
  let pending = probed.get(provider);
  if (!pending) {
    pending = (async () => {
      if (provider === "cpu") return;
      const listed = ort.listSupportedBackends?.().find((b) => b.name === provider);
      if (!listed)
        throw new UnmaskError(
          "EXECUTION_PROVIDER_UNAVAILABLE",
          `onnxruntime-node ${ort.env.versions.common} on ${process.platform}-${process.arch} has no ${provider} execution provider; use executionProvider "cpu"`,
          { subject: "executionProvider" },
        );
      try {
        const session = await ort.InferenceSession.create(probeGraph(), {
          executionProviders: [provider],
          logSeverityLevel: 4, // the failure is reported below, in one line
        });
        await session.release();
      } catch (cause) {
        throw new UnmaskError(
          "EXECUTION_PROVIDER_UNAVAILABLE",
          `the ${provider} execution provider of onnxruntime-node ${ort.env.versions.common} cannot start here (${(cause as Error).message.split("\n")[0]}); it needs an NVIDIA GPU with the CUDA 12 and cuDNN 9 libraries onnxruntime was built for. Use executionProvider "cpu".`,
          { cause, subject: "executionProvider" },
        );
      }
    })();
    pending.catch(() => probed.delete(provider));
    probed.set(provider, pending);
  }
  return pending;
}

/**
 * A session over graph bytes whose external data lives in `modelDir`.
 * @throws UnmaskError SESSION_FAILED naming the graph
 */
export async function createSession(
  graph: Uint8Array,
  modelDir: string,
  settings: SessionSettings,
  source: string,
): Promise<ort.InferenceSession> {
  await ensureExecutionProvider(settings.executionProvider);
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [settings.executionProvider],
    graphOptimizationLevel: "all",
    extra: { session: { model_external_initializers_file_folder_path: modelDir } },
  };
  if (settings.intraOpNumThreads !== undefined) options.intraOpNumThreads = settings.intraOpNumThreads;
  try {
    return await ort.InferenceSession.create(graph, options);
  } catch (cause) {
    throw new UnmaskError(
      "SESSION_FAILED",
      `${source}: onnxruntime could not load the graph (${(cause as Error).message})`,
      {
        cause,
        subject: source,
      },
    );
  }
}

export { ort };
