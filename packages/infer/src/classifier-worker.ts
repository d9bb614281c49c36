/**
 * The body of one worker thread of createWorkerClassifiers: loads the base model, the masks and
 * the classifier heads itself from paths (nothing large crosses threads), then answers requests
 * from its parent port. onnxruntime's run blocks this thread, never the server's event loop.
 *
 * Protocol (all messages plain structured-clone objects; the protocol types live in
 * worker-classifier.ts):
 *   parent -> worker  { type: "classify", id, name, images: (Uint8Array | Float32Array | string)[], topK }
 *                     { type: "dispose" }
 *   worker -> parent  { type: "ready", classifiers: ClassifierSummary[] }
 *                     { type: "init-failed", error: SerializedError }
 *                     { type: "result", id, results } | { type: "failed", id, error }
 */
import { parentPort, workerData } from "node:worker_threads";
import { isUnmaskError, UnmaskError } from "@unmask/mask-format";
import { BaseModel } from "./base-model.js";
import { type Classifier, createClassifier } from "./classifier.js";
import type {
  ClassifierSummary,
  SerializedError,
  WorkerInit,
  WorkerReply,
  WorkerRequest,
} from "./worker-classifier.js";

function serializeError(error: unknown): SerializedError {
  if (isUnmaskError(error))
    return { unmask: true, code: error.code, message: error.message, subject: error.subject };
  return { unmask: false, code: "INTERNAL", message: error instanceof Error ? error.message : String(error) };
}

const port = parentPort;
if (!port) throw new Error("classifier-worker runs only as a worker thread");
const init = workerData as WorkerInit;
const post = (reply: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);

let model: BaseModel | undefined;
const classifiers = new Map<string, Classifier>();

const ready = (async () => {
  model = await BaseModel.load({
    model: init.model,
    executionProvider: init.executionProvider,
    weightSharing: init.weightSharing,
    intraOpNumThreads: init.intraOpNumThreads,
  });
  for (const spec of init.classifiers)
    classifiers.set(
      spec.name,
      await createClassifier({
        model,
        mask: spec.mask,
        maskName: spec.name,
        classes: init.classes,
        template: init.template,
        batchSize: init.batchSize,
      }),
    );
  const summaries: ClassifierSummary[] = [...classifiers].map(([name, c]) => ({
    name,
    classNames: [...c.classNames],
    headSource: c.headSource,
    mask: c.mask && {
      name: c.mask.name,
      maskedBytes: c.mask.maskedBytes,
      mask: {
        baseModel: { ...c.mask.mask.baseModel },
        tensorNames: [...c.mask.mask.tensorNames],
      },
    },
  }));
  post({ type: "ready", classifiers: summaries });
})();

ready.catch((error) => {
  post({ type: "init-failed", error: serializeError(error) });
  // Nothing else to do: the parent terminates this thread.
});

port.on("message", async (message: WorkerRequest) => {
  if (message.type === "dispose") {
    await ready.catch(() => {});
    for (const c of classifiers.values()) await c.dispose().catch(() => {});
    await model?.dispose().catch(() => {});
    port.close();
    return;
  }
  if (message.type === "crash-for-test") process.exit(70);
  const { id } = message;
  try {
    await ready.catch((error) => {
      // A restarted worker that cannot load: the parent restarts it again; the request may retry.
      throw new UnmaskError(
        "WORKER_UNAVAILABLE",
        `the classifier worker could not load (${serializeError(error).message})`,
      );
    });
    const classifier = classifiers.get(message.name);
    if (!classifier) throw new Error(`no classifier named ${message.name} in this worker`);
    const results = await classifier.classify(message.images, { topK: message.topK });
    post({ type: "result", id, results });
  } catch (error) {
    post({ type: "failed", id, error: serializeError(error) });
  }
});
