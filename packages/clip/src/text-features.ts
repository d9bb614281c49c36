/**
 * Class text features for a CLIP classifier, as R-AMT builds them: for each class, encode every
 * filled template, L2-normalise each embedding, average over the templates, L2-normalise again.
 * The text encoder is a callback (ONNX in @unmask/infer, a CPU forward in the trainer).
 */
import { UnmaskError } from "@unmask/mask-format";
import { cleanClassName, fillTemplate } from "./templates.js";
import { DEFAULT_CONTEXT_LENGTH } from "./tokenizer.js";
import { tokenize } from "./tokenizer-node.js";

/** Encodes `count` rows of token ids ([count, contextLength] int32) to embeddings [count, E]. */
export type EncodeText = (ids: Int32Array, count: number) => Promise<Float32Array>;

export type TextFeaturesProgress = { status: "prompts"; done: number; total: number };

/** Prompts per `encodeText` call unless told otherwise. */
export const DEFAULT_TEXT_BATCH = 256;

export interface BuildClassTextFeaturesOptions {
  /** Class names as the dataset gives them; cleaned with `cleanClassName` unless `cleanNames` is false. */
  classNames: readonly string[];
  /** Templates with a `{}` placeholder (one per dataset in R-AMT). */
  templates: readonly string[];
  encodeText: EncodeText;
  /** Default 77. */
  contextLength?: number;
  /** Apply R-AMT's underscore-to-space + lowercase cleaning (default true). */
  cleanNames?: boolean;
  /** Prompts per `encodeText` call (default 256). */
  batchSize?: number;
  /** Tokenizer to use (default: the packaged CLIP tokenizer). */
  tokenize?: (texts: string[], options: { contextLength: number; truncate: boolean }) => Int32Array;
  onProgress?: (event: TextFeaturesProgress) => void;
}

function normalizeInPlace(v: Float64Array): void {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
  const norm = Math.sqrt(sum);
  if (norm === 0) return;
  for (let i = 0; i < v.length; i++) v[i] /= norm;
}

/** All prompts, class-major: prompt (c, t) at c * templates + t. */
function buildPrompts(options: BuildClassTextFeaturesOptions): string[] {
  const prompts: string[] = [];
  for (const className of options.classNames) {
    const name = options.cleanNames === false ? className : cleanClassName(className);
    for (const template of options.templates) prompts.push(fillTemplate(template, name));
  }
  return prompts;
}

/**
 * @returns Float32Array [classes, E], each row L2-normalised.
 * @throws UnmaskError BAD_OPTION for no classes/templates, BAD_EMBEDDING when the encoder returns
 *   a length that is not a whole number of rows of one width, TEXT_TOO_LONG for an over-long
 *   prompt, BAD_TEMPLATE for a template without `{}`.
 */
export async function buildClassTextFeatures(options: BuildClassTextFeaturesOptions): Promise<Float32Array> {
  const { classNames, templates, encodeText } = options;
  if (classNames.length === 0)
    throw new UnmaskError("BAD_OPTION", "classNames is empty", { subject: "classNames" });
  if (templates.length === 0)
    throw new UnmaskError("BAD_OPTION", "templates is empty", { subject: "templates" });
  const contextLength = options.contextLength ?? DEFAULT_CONTEXT_LENGTH;
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? DEFAULT_TEXT_BATCH));
  const tokenizeTexts = options.tokenize ?? tokenize;
  const prompts = buildPrompts(options);
  const ids = tokenizeTexts(prompts, { contextLength, truncate: false });

  let embedDim = 0;
  let sums = new Float64Array(0); // [classes, E]: sum over templates of normalised embeddings
  for (let start = 0; start < prompts.length; start += batchSize) {
    const count = Math.min(batchSize, prompts.length - start);
    const batch = ids.subarray(start * contextLength, (start + count) * contextLength);
    const embeddings = await encodeText(batch, count);
    const dim = embeddings.length / count;
    if (!Number.isInteger(dim) || dim === 0 || (embedDim !== 0 && dim !== embedDim)) {
      throw new UnmaskError(
        "BAD_EMBEDDING",
        `Text encoder returned ${embeddings.length} floats for ${count} prompts (from ${JSON.stringify(prompts[start])})${embedDim ? `, expected ${count * embedDim}` : ""}`,
        { subject: prompts[start] },
      );
    }
    if (embedDim === 0) {
      embedDim = dim;
      sums = new Float64Array(classNames.length * dim);
    }
    const row = new Float64Array(dim);
    for (let p = 0; p < count; p++) {
      for (let i = 0; i < dim; i++) row[i] = embeddings[p * dim + i];
      normalizeInPlace(row);
      const base = Math.floor((start + p) / templates.length) * dim;
      for (let i = 0; i < dim; i++) sums[base + i] += row[i];
    }
    options.onProgress?.({ status: "prompts", done: start + count, total: prompts.length });
  }
  // The mean over templates only rescales each row, which the final normalisation removes.
  const out = new Float32Array(classNames.length * embedDim);
  for (let c = 0; c < classNames.length; c++) {
    const row = sums.subarray(c * embedDim, (c + 1) * embedDim);
    normalizeInPlace(row);
    out.set(row, c * embedDim);
  }
  return out;
}
