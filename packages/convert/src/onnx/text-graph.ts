/**
 * text.onnx: input_ids [N, C] int32 -> text_embeds [N, E] float32, unnormalised, as OpenAI's
 * encode_text (docs/clip-formats.md 1.5):
 *
 *   token_embedding[ids] + positional_embedding -> Lt residual blocks with the causal mask
 *   -> the row at ids.argmax(-1) (end-of-text, the largest id; first max as torch) -> ln_final
 *   -> @ text_projection [D, E]
 *
 * ln_final is applied after pooling: LayerNorm is per row, so it is the same and N times cheaper.
 * ids are int32 because ArgMax on int64 is missing from several runtimes (onnxruntime #9760).
 */
import { UnmaskError } from "@unmask/mask-format";
import { GraphBuilder, int } from "./graph-builder.js";
import { OnnxDataType } from "./onnx-proto.js";
import { layerNorm, residualBlock } from "./residual-block.js";
import { TowerWeights } from "./tower-weights.js";
import { BATCH_DIM, type TowerGraphOptions } from "./vision-graph.js";

/** The additive causal mask: -inf strictly above the diagonal, 0 elsewhere ([C, C] float32). */
export function causalMask(context: number): Float32Array {
  const mask = new Float32Array(context * context);
  for (let r = 0; r < context; r++) for (let c = r + 1; c < context; c++) mask[r * context + c] = -Infinity;
  return mask;
}

export function buildTextGraph(options: TowerGraphOptions): GraphBuilder {
  const { config } = options;
  const context = config.contextLength;
  const width = config.transformerWidth;
  const embed = config.embedDim;
  if (width % config.transformerHeads !== 0)
    throw new UnmaskError(
      "ONNX_UNSUPPORTED_MODEL",
      `${options.source}: text width ${width} is not a multiple of ${config.transformerHeads} heads`,
      { subject: "transformer_heads" },
    );
  const g = new GraphBuilder("clip_text");
  const w = new TowerWeights(g, options.tensors, options.location, options.source);

  const ids = g.input("input_ids", OnnxDataType.INT32, [BATCH_DIM, context]);
  const rows = g.scoped("embed", () => {
    // Gather from the table as stored, then widen the gathered rows only: an fp16 table stays fp16
    // in memory instead of a 4-byte copy of all 49,408 rows.
    const table = w.stored("token_embedding.weight", [config.vocabSize, width]);
    let tokens = g.node("Gather", [table.value, ids], { axis: int(0) }, { name: "token_embedding" });
    if (table.dataType !== OnnxDataType.FLOAT)
      tokens = g.node("Cast", [tokens], { to: int(OnnxDataType.FLOAT) });
    const positioned = g.node("Add", [tokens, w.float32("positional_embedding", [context, width])]);
    return g.node("Reshape", [positioned, g.constInt64([-1, width])]); // [N*C, D]
  });

  const mask = g.constant(
    "causal_mask",
    OnnxDataType.FLOAT,
    [context, context],
    new Uint8Array(causalMask(context).buffer),
  );
  let x = rows;
  for (let i = 0; i < config.transformerLayers; i++)
    x = residualBlock(g, w, x, {
      prefix: `transformer.resblocks.${i}.`,
      width,
      heads: config.transformerHeads,
      tokens: context,
      mask,
      attention: options.attention ?? "matmul",
    });

  const embeds = g.scoped("head", () => {
    const seq = g.node("Reshape", [x, g.constInt64([-1, context, width])]);
    const eot = g.node("ArgMax", [ids], { axis: int(-1), keepdims: int(1), select_last_index: int(0) }); // [N, 1]
    const pooled = g.node("GatherND", [seq, eot], { batch_dims: int(1) }); // [N, D]
    const normed = layerNorm(
      g,
      pooled,
      w.float32("ln_final.weight", [width]),
      w.float32("ln_final.bias", [width]),
    );
    return g.node(
      "MatMul",
      [normed, w.float32("text_projection", [width, embed])],
      {},
      { name: "text_projection" },
    );
  });
  g.output(embeds, "text_embeds", OnnxDataType.FLOAT, [BATCH_DIM, embed]);
  return g;
}
