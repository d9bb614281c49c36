/**
 * The cpu engine's model: the frozen weights copied into the arena (checked against the config's
 * shapes), the student's weights (W' in place of each masked tensor), the weight-gradient buffers
 * of the masked tensors and their scores and Adam moments.
 */
import { UnmaskError } from "@unmask/clip";
import type { EngineModel, RmtHyper } from "../../engine.js";
import type { Arena } from "./arena.js";
import type { BlockGradients, BlockWeights } from "./block.js";
import { applyMask } from "./update.js";
import type { VitDims, VitGradients, VitWeights } from "./vit.js";

const BLOCK_TENSOR_KINDS = {
  "attn.in_proj_weight": "inProj",
  "attn.out_proj.weight": "outProj",
  "mlp.c_fc.weight": "fc",
  "mlp.c_proj.weight": "proj",
} as const;
type BlockTensorKind = (typeof BLOCK_TENSOR_KINDS)[keyof typeof BLOCK_TENSOR_KINDS];
const MASKED_BLOCK_TENSOR =
  /^visual\.transformer\.resblocks\.(\d+)\.(attn\.in_proj_weight|attn\.out_proj\.weight|mlp\.c_fc\.weight|mlp\.c_proj\.weight)$/;

export interface MaskedTensor {
  name: string;
  index: number;
  count: number;
  weight: Float32Array;
  masked: Float32Array;
  scores: Float32Array;
  adamM: Float32Array;
  adamV: Float32Array;
  /** [2, count]: dW' of the ce and kl signals */
  grad: Float32Array;
}

/** The model's dimensions, checked against the weights' shapes. */
export function vitDims(model: EngineModel): VitDims {
  const { config } = model;
  if (config.architecture !== "vit" || !config.visionPatchSize)
    throw new UnmaskError("UNSUPPORTED_MODEL", "cpu engine: only ViT image towers are supported", {
      subject: "config.architecture",
    });
  const resolution = config.imageResolution;
  const patch = config.visionPatchSize;
  const grid = resolution / patch;
  const width = config.visionWidth;
  const classes = model.textFeatures.shape[0];
  if (!Number.isInteger(grid))
    throw new UnmaskError(
      "BAD_CONFIG",
      `cpu engine: resolution ${resolution} is not a multiple of patch ${patch}`,
      {
        subject: "config.imageResolution",
      },
    );
  if (width % config.visionHeads !== 0)
    throw new UnmaskError(
      "BAD_CONFIG",
      `cpu engine: width ${width} is not divisible by ${config.visionHeads} heads`,
      {
        subject: "config.visionHeads",
      },
    );
  if (model.textFeatures.shape.length !== 2 || model.textFeatures.shape[1] !== config.embedDim || classes < 1)
    throw new UnmaskError(
      "BAD_SHAPE",
      `cpu engine: textFeatures has shape [${model.textFeatures.shape}], expected [classes, ${config.embedDim}]`,
      { subject: "textFeatures" },
    );
  return {
    resolution,
    patch,
    patches: grid * grid,
    tokens: grid * grid + 1,
    width,
    heads: config.visionHeads,
    mlp: 4 * width,
    layers: config.visionLayers as number,
    embed: config.embedDim,
    classes,
  };
}

export interface CpuModel {
  dims: VitDims;
  teacher: VitWeights;
  student: VitWeights;
  grads: VitGradients;
  masked: MaskedTensor[];
}

/** Loads `model` into the arena; scores start at hyper.scoreInit. */
export function loadCpuModel(arena: Arena, model: EngineModel, hyper: RmtHyper): CpuModel {
  const dims = vitDims(model);
  const { width: D, mlp: F, embed: E, tokens: N, patch: p } = dims;
  const load = (name: string, shape: number[]): Float32Array => {
    const t = model.weights.get(name);
    if (!t)
      throw new UnmaskError("TENSOR_NOT_FOUND", `cpu engine: the model has no tensor ${name}`, {
        subject: name,
      });
    const expected = shape.reduce((x, y) => x * y, 1);
    if (t.data.length !== expected || t.shape.reduce((x, y) => x * y, 1) !== expected)
      throw new UnmaskError(
        "BAD_SHAPE",
        `cpu engine: tensor ${name} has shape [${t.shape}], expected [${shape}]`,
        { subject: name },
      );
    return arena.copyOf(t.data, name);
  };
  const blockWeights = (l: number): BlockWeights => {
    const b = `visual.transformer.resblocks.${l}.`;
    return {
      ln1Weight: load(`${b}ln_1.weight`, [D]),
      ln1Bias: load(`${b}ln_1.bias`, [D]),
      inProjWeight: load(`${b}attn.in_proj_weight`, [3 * D, D]),
      inProjBias: load(`${b}attn.in_proj_bias`, [3 * D]),
      outProjWeight: load(`${b}attn.out_proj.weight`, [D, D]),
      outProjBias: load(`${b}attn.out_proj.bias`, [D]),
      ln2Weight: load(`${b}ln_2.weight`, [D]),
      ln2Bias: load(`${b}ln_2.bias`, [D]),
      fcWeight: load(`${b}mlp.c_fc.weight`, [F, D]),
      fcBias: load(`${b}mlp.c_fc.bias`, [F]),
      projWeight: load(`${b}mlp.c_proj.weight`, [D, F]),
      projBias: load(`${b}mlp.c_proj.bias`, [D]),
    };
  };
  const teacher: VitWeights = {
    conv1: load("visual.conv1.weight", [D, 3, p, p]),
    classEmbedding: load("visual.class_embedding", [D]),
    positional: load("visual.positional_embedding", [N, D]),
    lnPreWeight: load("visual.ln_pre.weight", [D]),
    lnPreBias: load("visual.ln_pre.bias", [D]),
    blocks: Array.from({ length: dims.layers }, (_, l) => blockWeights(l)),
    head: {
      lnPostWeight: load("visual.ln_post.weight", [D]),
      lnPostBias: load("visual.ln_post.bias", [D]),
      proj: load("visual.proj", [D, E]),
      textFeatures: Float32Array.from(model.textFeatures.data),
      logitScale: model.logitScale,
    },
  };
  const student: VitWeights = { ...teacher, blocks: teacher.blocks.map((b) => ({ ...b })) };
  const grads: VitGradients = { blocks: teacher.blocks.map(() => ({}) as BlockGradients) };

  const seen = new Set<string>();
  const masked = model.maskedTensors.map((name, index) => {
    if (seen.has(name))
      throw new UnmaskError("BAD_OPTION", `cpu engine: masked tensor ${name} is listed twice`, {
        subject: name,
      });
    seen.add(name);
    let weight: Float32Array;
    let assign: (masked: Float32Array, grad: Float32Array) => void;
    const match = MASKED_BLOCK_TENSOR.exec(name);
    if (name === "visual.conv1.weight") {
      weight = teacher.conv1;
      assign = (masked, grad) => {
        student.conv1 = masked;
        grads.conv1 = grad;
      };
    } else if (match && Number(match[1]) < dims.layers) {
      const l = Number(match[1]);
      const kind: BlockTensorKind = BLOCK_TENSOR_KINDS[match[2] as keyof typeof BLOCK_TENSOR_KINDS];
      const field = `${kind}Weight` as const;
      weight = teacher.blocks[l][field];
      assign = (masked, grad) => {
        student.blocks[l][field] = masked;
        grads.blocks[l][kind] = grad;
      };
    } else {
      throw new UnmaskError(
        "UNSUPPORTED_MASKED_TENSOR",
        `cpu engine: cannot mask ${name} (supported: visual.conv1.weight and the attention in/out and MLP weights of existing vision blocks)`,
        { subject: name },
      );
    }
    const count = weight.length;
    const t: MaskedTensor = {
      name,
      index,
      count,
      weight,
      masked: arena.floats(count, `${name} (masked)`),
      scores: new Float32Array(count).fill(hyper.scoreInit),
      adamM: new Float32Array(count),
      adamV: new Float32Array(count),
      grad: arena.floats(2 * count, `${name} gradient`),
    };
    applyMask(t.masked, t.weight, t.scores, count, hyper.threshold);
    assign(t.masked, t.grad);
    return t;
  });
  return { dims, teacher, student, grads, masked };
}
