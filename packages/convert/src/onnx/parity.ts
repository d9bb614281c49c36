/**
 * The parity measures of the ONNX export against PyTorch (issue 4): embeddings within 1e-4 of
 * max |a - b| / ||b||, logits_per_image within 1e-3 absolute, logits as CLIP computes them.
 */

/** max |actual - expected| / ||expected||_2 over the whole tensor. */
export function relativeMaxError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let maxAbs = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(actual[i] - expected[i]));
    norm += expected[i] * expected[i];
  }
  return maxAbs / Math.sqrt(norm);
}

export function maxAbsError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) maxAbs = Math.max(maxAbs, Math.abs(actual[i] - expected[i]));
  return maxAbs;
}

/** Rows of a [rows, dim] matrix scaled to unit L2 norm (float64). */
export function normalizeRows(x: ArrayLike<number>, dim: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let s = 0;
    for (let c = 0; c < dim; c++) s += x[r * dim + c] ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let c = 0; c < dim; c++) out[r * dim + c] = x[r * dim + c] * inv;
  }
  return out;
}

/** logits_per_image [I, T] = exp(logit_scale) * normalised image embeds . normalised text embeds^T. */
export function logitsPerImage(
  imageEmbeds: ArrayLike<number>,
  textEmbeds: ArrayLike<number>,
  dim: number,
  logitScale: number,
): Float32Array {
  const a = normalizeRows(imageEmbeds, dim);
  const b = normalizeRows(textEmbeds, dim);
  const images = a.length / dim;
  const texts = b.length / dim;
  const scale = Math.exp(logitScale);
  const out = new Float32Array(images * texts);
  for (let i = 0; i < images; i++)
    for (let j = 0; j < texts; j++) {
      let s = 0;
      for (let c = 0; c < dim; c++) s += a[i * dim + c] * b[j * dim + c];
      out[i * texts + j] = scale * s;
    }
  return out;
}
