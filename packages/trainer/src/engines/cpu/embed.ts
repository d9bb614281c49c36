/**
 * embed: the token sequence of the image tower before LN_pre.
 *   x0[b, 0]     = class_embedding + positional[0]
 *   x0[b, 1 + i] = patchEmbeds[b, i] + positional[1 + i]
 * x0 [B * N, D] with N = P + 1; patchEmbeds [B * P, D]; positional [N, D].
 *
 * embedBackward gathers the gradient of the patch embeddings (rows 1..N-1 of every image) for
 * each signal: dPatchEmbeds [S * B * P, D] from dx0 [S * B * N, D]. Class and positional
 * embeddings are frozen and get no gradient.
 */
export function embedForward(
  x0: Float32Array,
  patchEmbeds: Float32Array,
  classEmbedding: Float32Array,
  positional: Float32Array,
  batch: number,
  patches: number,
  width: number,
): void {
  const tokens = patches + 1;
  for (let b = 0; b < batch; b++) {
    const row0 = b * tokens * width;
    for (let d = 0; d < width; d++) x0[row0 + d] = classEmbedding[d] + positional[d];
    for (let i = 0; i < patches; i++) {
      const dst = row0 + (i + 1) * width;
      const src = (b * patches + i) * width;
      const pos = (i + 1) * width;
      for (let d = 0; d < width; d++) x0[dst + d] = patchEmbeds[src + d] + positional[pos + d];
    }
  }
}

export function embedBackward(
  dPatchEmbeds: Float32Array,
  dx0: Float32Array,
  batch: number,
  patches: number,
  width: number,
  signals: number,
): void {
  const tokens = patches + 1;
  for (let sb = 0; sb < signals * batch; sb++) {
    const src = (sb * tokens + 1) * width;
    dPatchEmbeds.set(dx0.subarray(src, src + patches * width), sb * patches * width);
  }
}
