/**
 * createClassifier: CLIP zero-shot or masked classification over a model directory.
 *
 * logits = exp(logit_scale) * cos(image embedding, class text features); scores = softmax(logits).
 * The class text features come, in order of preference, from `head`, from the mask's head (no
 * text tower needed), or from text.onnx with the class names and template(s) (cached per list).
 */
import { DEFAULT_TEMPLATE } from "@unmask/clip";
import { type DecodedMask, type MaskHead, UnmaskError } from "@unmask/mask-format";
import { BaseModel, type LoadBaseModelOptions, type MaskHandle } from "./base-model.js";
import { type ClassifierImage, imagesToBatch } from "./image-batch.js";

/** Images per onnxruntime run unless told otherwise. */
export const DEFAULT_BATCH_SIZE = 16;

export interface CreateClassifierOptions extends Omit<LoadBaseModelOptions, "model"> {
  /** A model directory, or a BaseModel shared with other classifiers (masks then share weights). */
  model: string | BaseModel;
  /** A .umask path, its bytes, or a decoded mask. Omit for zero-shot. */
  mask?: string | Uint8Array | DecodedMask;
  /** Name of the mask in errors and listings (default: its path). */
  maskName?: string;
  /** Class names; default: the mask head's. */
  classes?: readonly string[];
  /** Prompt template(s) with `{}`; default: the mask head's template, else "a photo of a {}.". */
  template?: string | readonly string[];
  /** Precomputed class features [classes, E] (L2-normalised rows) with their names. */
  head?: { classNames: readonly string[]; textFeatures: Float32Array };
  /** Images per onnxruntime run (default 16); any number of images is accepted per call. */
  batchSize?: number;
}

export interface ClassScore {
  label: string;
  index: number;
  score: number;
}

export interface Classification {
  /** Top-1 label. */
  label: string;
  index: number;
  score: number;
  /** The topK classes, best first. */
  top: ClassScore[];
}

export interface Classifier {
  readonly classNames: readonly string[];
  readonly model: BaseModel;
  readonly mask: MaskHandle | null;
  /** Where the class features came from. */
  readonly headSource: "option" | "mask" | "text-encoder";
  classify(images: readonly ClassifierImage[], options?: { topK?: number }): Promise<Classification[]>;
  /** Class probabilities [images, classes] (softmax of the logits) for callers that need all of them. */
  probabilities(images: readonly ClassifierImage[]): Promise<Float32Array>;
  /** L2-normalised image embeddings [images, embedDim]. */
  embed(images: readonly ClassifierImage[]): Promise<Float32Array>;
  /** Releases the mask, and the model when the classifier opened it. */
  dispose(): Promise<void>;
}

function normalizeRows(data: Float32Array, dim: number): Float32Array {
  for (let r = 0; r < data.length / dim; r++) {
    let sum = 0;
    for (let i = r * dim; i < (r + 1) * dim; i++) sum += data[i] * data[i];
    const inv = sum > 0 ? 1 / Math.sqrt(sum) : 0;
    for (let i = r * dim; i < (r + 1) * dim; i++) data[i] *= inv;
  }
  return data;
}

/** Softmax of scale * (images @ features^T), per row. */
export function classProbabilities(
  imageFeatures: Float32Array,
  textFeatures: Float32Array,
  dim: number,
  logitScale: number,
): Float32Array {
  const images = imageFeatures.length / dim;
  const classes = textFeatures.length / dim;
  const out = new Float32Array(images * classes);
  const logits = new Float64Array(classes);
  for (let n = 0; n < images; n++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < classes; c++) {
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += imageFeatures[n * dim + i] * textFeatures[c * dim + i];
      logits[c] = logitScale * dot;
      if (logits[c] > max) max = logits[c];
    }
    let sum = 0;
    for (let c = 0; c < classes; c++) {
      logits[c] = Math.exp(logits[c] - max);
      sum += logits[c];
    }
    for (let c = 0; c < classes; c++) out[n * classes + c] = logits[c] / sum;
  }
  return out;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * @throws UnmaskError BAD_OPTION (no classes and no head), FINGERPRINT_MISMATCH, NO_TEXT_TOWER,
 *   MODEL_DIR_INVALID, EXECUTION_PROVIDER_UNAVAILABLE, and mask decoding errors
 */
export async function createClassifier(options: CreateClassifierOptions): Promise<Classifier> {
  const ownsModel = typeof options.model === "string";
  const model =
    typeof options.model === "string"
      ? await BaseModel.load({ ...options, model: options.model })
      : options.model;
  let mask: MaskHandle | null = null;
  try {
    if (options.mask !== undefined) mask = await model.addMask(options.mask, { name: options.maskName });
    const dim = model.config.embedDim;
    const maskHead: MaskHead | undefined = mask?.head;
    let classNames: readonly string[];
    let textFeatures: Float32Array;
    let headSource: Classifier["headSource"];
    if (options.head) {
      classNames = options.head.classNames;
      textFeatures = options.head.textFeatures;
      headSource = "option";
    } else if (
      maskHead &&
      (options.classes === undefined || sameList(options.classes, maskHead.classNames))
    ) {
      classNames = maskHead.classNames;
      textFeatures = normalizeRows(Float32Array.from(maskHead.textFeatures), maskHead.dim);
      headSource = "mask";
    } else {
      if (!options.classes || options.classes.length === 0)
        throw new UnmaskError("BAD_OPTION", "give classes (or a mask with a classifier head, or a head)", {
          subject: "classes",
        });
      classNames = options.classes;
      const templates =
        options.template === undefined
          ? [maskHead?.template ?? DEFAULT_TEMPLATE]
          : typeof options.template === "string"
            ? [options.template]
            : options.template;
      textFeatures = await model.textFeatures(classNames, templates);
      headSource = "text-encoder";
    }
    if (textFeatures.length !== classNames.length * dim)
      throw new UnmaskError(
        "BAD_OPTION",
        `the class features hold ${textFeatures.length} floats; ${classNames.length} classes x embed dim ${dim} need ${classNames.length * dim}`,
        { subject: "head" },
      );
    const batchSize = Math.max(1, Math.floor(options.batchSize ?? DEFAULT_BATCH_SIZE));
    const logitScale = await model.logitScale();
    const resolution = model.config.imageResolution;

    const embed = async (images: readonly ClassifierImage[]): Promise<Float32Array> => {
      const out = new Float32Array(images.length * dim);
      for (let start = 0; start < images.length; start += batchSize) {
        const chunk = images.slice(start, start + batchSize);
        const pixels = await imagesToBatch(chunk, resolution);
        out.set(await model.encodeImages(pixels, chunk.length, mask), start * dim);
      }
      return normalizeRows(out, dim);
    };
    const probabilities = async (images: readonly ClassifierImage[]) =>
      classProbabilities(await embed(images), textFeatures, dim, logitScale);

    let disposed = false;
    return {
      classNames,
      model,
      mask,
      headSource,
      embed,
      probabilities,
      async classify(images, { topK = 5 } = {}) {
        if (!Number.isSafeInteger(topK) || topK < 1)
          throw new UnmaskError("BAD_OPTION", `topK must be a positive integer, not ${topK}`, {
            subject: "topK",
          });
        const probs = await probabilities(images);
        const classes = classNames.length;
        const k = Math.min(topK, classes);
        const results: Classification[] = [];
        for (let n = 0; n < images.length; n++) {
          const row = probs.subarray(n * classes, (n + 1) * classes);
          // Stable order: higher score first, then lower class index (argmax picks the first max).
          const order = Array.from({ length: classes }, (_, c) => c).sort((a, b) => row[b] - row[a] || a - b);
          const top = order.slice(0, k).map((c) => ({ label: classNames[c], index: c, score: row[c] }));
          results.push({ label: top[0].label, index: top[0].index, score: top[0].score, top });
        }
        return results;
      },
      async dispose() {
        if (disposed) return;
        disposed = true;
        if (mask) await model.removeMask(mask);
        if (ownsModel) await model.dispose();
      },
    };
  } catch (error) {
    if (mask) await model.removeMask(mask).catch(() => {});
    if (ownsModel) await model.dispose().catch(() => {});
    throw error;
  }
}
