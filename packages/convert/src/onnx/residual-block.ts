/**
 * One pre-LN residual attention block of CLIP (docs/clip-formats.md 1.5), shared by both towers:
 *
 *   x = x + out_proj(MHA(ln_1(x)))          MHA: head_dim 64, softmax(q k^T / sqrt(d) + mask) v
 *   x = x + c_proj(QuickGELU(c_fc(ln_2(x))))   QuickGELU(z) = z * sigmoid(1.702 z)
 *
 * The residual stream is kept 2-D, x: [N*T, W] float32, so every Linear is one
 * Gemm(transB=1) straight on the stored [out, in] weight (no transposed copy on disk or in
 * memory; onnxruntime pre-packs the constant B operand). Attention reshapes to heads.
 */
import type { BLOCK_TENSORS } from "@unmask/clip";
import { float, type GraphBuilder, int, ints } from "./graph-builder.js";
import type { TowerWeights } from "./tower-weights.js";

/**
 * How attention is expressed:
 * - "matmul": standard ops (Reshape/Transpose, MatMul, Softmax, MatMul); runs on any ONNX runtime.
 * - "mha": onnxruntime's com.microsoft MultiHeadAttention (fused CPU kernel), fed by the same Gemm.
 */
export type AttentionKernel = "matmul" | "mha";

export interface BlockSpec {
  /** Name prefix of the block's tensors, e.g. "visual.transformer.resblocks.3." */
  prefix: string;
  width: number;
  heads: number;
  /** Tokens per sequence (T): static, so reshapes need only -1 for the batch. */
  tokens: number;
  /** An additive [T, T] float mask (text: causal), or none. */
  mask?: string;
  attention: AttentionKernel;
}

type BlockTensor = (typeof BLOCK_TENSORS)[number];

/** LayerNormalization over the last axis with eps 1e-5 (nn.LayerNorm's default). */
export function layerNorm(g: GraphBuilder, x: string, weight: string, bias: string): string {
  return g.node(
    "LayerNormalization",
    [x, weight, bias],
    { axis: int(-1), epsilon: float(1e-5) },
    {
      name: "ln",
    },
  );
}

/** y = x W^T + b on a 2-D x, with W stored [out, in]. */
export function linear(g: GraphBuilder, x: string, weight: string, bias: string, name: string): string {
  return g.node("Gemm", [x, weight, bias], { transB: int(1) }, { name });
}

function attention(g: GraphBuilder, qkv: string, spec: BlockSpec): string {
  const { width, heads, tokens } = spec;
  const headDim = width / heads;
  if (spec.attention === "mha") {
    // [N*T, 3W] -> [N, T, 3W] -> three [N, T, W] -> fused attention -> [N, T, W]
    const seq = g.node("Reshape", [qkv, g.constInt64([-1, tokens, 3 * width])]);
    const [q, k, v] = g.nodeN("Split", [seq], { axis: int(2) }, 3, { name: "qkv" });
    const inputs = [q, k, v];
    if (spec.mask) inputs.push("", "", g.node("Reshape", [spec.mask, g.constInt64([1, 1, tokens, tokens])]));
    const o = g.node("MultiHeadAttention", inputs, { num_heads: int(heads) }, { domain: "com.microsoft" });
    return g.node("Reshape", [o, g.constInt64([-1, width])]);
  }
  // [N*T, 3W] -> [N, T, 3, H, d] -> [3, N, H, T, d] -> q, k, v: [N, H, T, d]
  const split = g.node("Reshape", [qkv, g.constInt64([-1, tokens, 3, heads, headDim])]);
  const byHead = g.node("Transpose", [split], { perm: ints([2, 0, 3, 1, 4]) });
  const [q, k, v] = g
    .nodeN("Split", [byHead], { axis: int(0) }, 3, { name: "qkv" })
    .map((t) => g.node("Squeeze", [t, g.constInt64([0])]));
  // scores [N, H, T, T]; onnxruntime fuses Transpose + MatMul + Mul into one FusedMatMul.
  const kT = g.node("Transpose", [k], { perm: ints([0, 1, 3, 2]) });
  let scores = g.node("Mul", [g.node("MatMul", [q, kT]), g.constFloat([1 / Math.sqrt(headDim)], [])]);
  if (spec.mask) scores = g.node("Add", [scores, spec.mask]);
  const probs = g.node("Softmax", [scores], { axis: int(-1) });
  const o = g.node("MatMul", [probs, v]); // [N, H, T, d]
  const merged = g.node("Transpose", [o], { perm: ints([0, 2, 1, 3]) }); // [N, T, H, d]
  return g.node("Reshape", [merged, g.constInt64([-1, width])]);
}

/** Appends one residual block; `x` and the result are [N*T, W] float32. */
export function residualBlock(g: GraphBuilder, w: TowerWeights, x: string, spec: BlockSpec): string {
  const { width } = spec;
  const t = (name: BlockTensor, shape: number[]) => w.float32(`${spec.prefix}${name}`, shape);
  return g.scoped(spec.prefix.replace(/\.$/, ""), () => {
    const h1 = layerNorm(g, x, t("ln_1.weight", [width]), t("ln_1.bias", [width]));
    const qkv = linear(
      g,
      h1,
      t("attn.in_proj_weight", [3 * width, width]),
      t("attn.in_proj_bias", [3 * width]),
      "in_proj",
    );
    const attended = attention(g, qkv, spec);
    const a = linear(
      g,
      attended,
      t("attn.out_proj.weight", [width, width]),
      t("attn.out_proj.bias", [width]),
      "out_proj",
    );
    const x1 = g.node("Add", [x, a], {}, { name: "residual" });

    const h2 = layerNorm(g, x1, t("ln_2.weight", [width]), t("ln_2.bias", [width]));
    const f = linear(
      g,
      h2,
      t("mlp.c_fc.weight", [4 * width, width]),
      t("mlp.c_fc.bias", [4 * width]),
      "c_fc",
    );
    // QuickGELU; onnxruntime fuses this pattern into its QuickGelu kernel.
    const gate = g.node("Sigmoid", [g.node("Mul", [f, g.constFloat([1.702], [])])]);
    const act = g.node("Mul", [f, gate], {}, { name: "quick_gelu" });
    const m = linear(
      g,
      act,
      t("mlp.c_proj.weight", [width, 4 * width]),
      t("mlp.c_proj.bias", [width]),
      "c_proj",
    );
    return g.node("Add", [x1, m], {}, { name: "residual" });
  });
}
