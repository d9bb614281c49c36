/**
 * head: from the last block's output to the logits, and back.
 *
 * headForward (B images, N tokens, width D, embed E, C classes):
 *   cls[b]      = xFinal[b * N]                       the class token [B, D]
 *   post        = LN_post(cls)                        mean/rstd [B] kept
 *   features    = post @ proj                         [B, E] (proj [D, E]: the image embedding)
 *   norms[b]    = ||features[b]||
 *   logits      = logitScale * (features / norms) @ textFeatures^T      [B, C]
 * headBackward, for `signals` logit gradients dlogits [S * B, C]:
 *   dfn = logitScale * dlogits @ textFeatures;  df = (dfn - fn (fn . dfn)) / norm
 *   dpost = df @ proj^T;  dcls = LN_post backward;  dxFinal [S * B * N, D] = dcls on class rows, 0 elsewhere
 * The sizes are tiny (B x D x E), so plain loops in float64.
 */
import { layernormBackward, layernormForward } from "./layernorm.js";

export interface HeadWeights {
  lnPostWeight: Float32Array;
  lnPostBias: Float32Array;
  /** [D, E] */
  proj: Float32Array;
  /** [C, E], L2-normalised rows */
  textFeatures: Float32Array;
  logitScale: number;
}

export interface HeadActivations {
  /** [B, D] class-token rows of the last block's output */
  cls: Float32Array;
  mean: Float32Array;
  rstd: Float32Array;
  /** [B, D] LN_post output */
  post: Float32Array;
  /** [B, E] image embeddings before normalisation */
  features: Float32Array;
  /** [B] */
  norms: Float32Array;
}

export function headForward(
  logits: Float32Array,
  acts: HeadActivations,
  xFinal: Float32Array,
  w: HeadWeights,
  batch: number,
  tokens: number,
  width: number,
  embed: number,
  classes: number,
): void {
  for (let b = 0; b < batch; b++)
    acts.cls.set(xFinal.subarray(b * tokens * width, b * tokens * width + width), b * width);
  layernormForward(acts.post, acts.mean, acts.rstd, acts.cls, w.lnPostWeight, w.lnPostBias, batch, width);
  for (let b = 0; b < batch; b++) {
    let norm2 = 0;
    for (let e = 0; e < embed; e++) {
      let sum = 0;
      for (let d = 0; d < width; d++) sum += acts.post[b * width + d] * w.proj[d * embed + e];
      acts.features[b * embed + e] = sum;
      norm2 += sum * sum;
    }
    const norm = Math.sqrt(norm2);
    acts.norms[b] = norm;
    for (let c = 0; c < classes; c++) {
      let dot = 0;
      for (let e = 0; e < embed; e++) dot += acts.features[b * embed + e] * w.textFeatures[c * embed + e];
      logits[b * classes + c] = (w.logitScale * dot) / norm;
    }
  }
}

export function headBackward(
  dxFinal: Float32Array,
  dlogits: Float32Array,
  acts: HeadActivations,
  w: HeadWeights,
  batch: number,
  tokens: number,
  width: number,
  embed: number,
  classes: number,
  signals: number,
): void {
  const dpost = new Float32Array(signals * batch * width);
  const dfn = new Float64Array(embed);
  for (let sb = 0; sb < signals * batch; sb++) {
    const b = sb % batch;
    const norm = acts.norms[b];
    let dot = 0;
    for (let e = 0; e < embed; e++) {
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += dlogits[sb * classes + c] * w.textFeatures[c * embed + e];
      dfn[e] = w.logitScale * sum;
      dot += (acts.features[b * embed + e] / norm) * dfn[e];
    }
    for (let e = 0; e < embed; e++) dfn[e] = (dfn[e] - (acts.features[b * embed + e] / norm) * dot) / norm;
    for (let d = 0; d < width; d++) {
      let sum = 0;
      for (let e = 0; e < embed; e++) sum += dfn[e] * w.proj[d * embed + e];
      dpost[sb * width + d] = sum;
    }
  }
  const dcls = new Float32Array(signals * batch * width);
  layernormBackward(
    dcls,
    dpost,
    acts.cls,
    w.lnPostWeight,
    acts.mean,
    acts.rstd,
    batch,
    width,
    signals,
    false,
  );
  dxFinal.fill(0, 0, signals * batch * tokens * width);
  for (let sb = 0; sb < signals * batch; sb++)
    dxFinal.set(dcls.subarray(sb * width, (sb + 1) * width), sb * tokens * width);
}
