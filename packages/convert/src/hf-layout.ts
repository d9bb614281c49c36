/**
 * Hugging Face transformers `CLIPModel` layout <-> canonical OpenAI layout (docs/clip-formats.md
 * 4.1-4.2). Reading follows @unmask/clip's `planFromHf` (q/k/v rows concatenated into in_proj,
 * the two projections transposed); writing is the exact inverse, used to export and to test the
 * round trip. config.json is checked so that a model with another activation or head layout is
 * refused rather than converted wrong.
 */
import { readFile, stat } from "node:fs/promises";
import { type ClipConfig, DTYPE_BYTES, type DType, type HfSourcePlan, hfNameFor } from "@unmask/clip";
import { fail } from "./errors.js";

/** HF config.json files are a few KB. */
export const MAX_HF_CONFIG_BYTES = 1024 * 1024;

/** Transposes a row-major [rows, cols] matrix of `elementBytes`-byte elements. */
export function transpose2d(bytes: Uint8Array, rows: number, cols: number, elementBytes: number): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const from = (r * cols + c) * elementBytes;
      const to = (c * rows + r) * elementBytes;
      for (let b = 0; b < elementBytes; b++) out[to + b] = bytes[from + b];
    }
  return out;
}

/** The canonical shape a plan entry produces from its HF sources' shapes. */
export function plannedShape(
  plan: HfSourcePlan,
  shapeOf: (hfName: string) => readonly number[],
  name: string,
): number[] {
  if (plan.op === "copy") return [...shapeOf(plan.from)];
  if (plan.op === "transpose") {
    const s = shapeOf(plan.from);
    if (s.length !== 2)
      fail(
        "NOT_A_CLIP_MODEL",
        `${plan.from} is not a matrix (shape [${s.join(", ")}]), cannot build ${name}`,
        plan.from,
      );
    return [s[1], s[0]];
  }
  const parts = plan.from.map(shapeOf);
  const rest = parts[0].slice(1);
  for (const [i, p] of parts.entries())
    if (p.length !== parts[0].length || p.some((d, j) => j > 0 && d !== parts[0][j]) || p[0] !== parts[0][0])
      fail(
        "NOT_A_CLIP_MODEL",
        `${plan.from[i]} has shape [${p.join(", ")}], unlike ${plan.from[0]}`,
        plan.from[i],
      );
  return [parts[0][0] * parts.length, ...rest];
}

interface HfConfigJson {
  model_type?: unknown;
  projection_dim?: unknown;
  text_config?: Record<string, unknown>;
  vision_config?: Record<string, unknown>;
}

/** Reads config.json beside an HF checkpoint (refusing anything over MAX_HF_CONFIG_BYTES). */
export async function readHfConfig(path: string): Promise<HfConfigJson> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    return fail(
      "UNKNOWN_FORMAT",
      `${path} not found: a Hugging Face CLIPModel checkpoint needs its config.json beside model.safetensors`,
      path,
    );
  }
  if (size > MAX_HF_CONFIG_BYTES)
    fail("UNKNOWN_FORMAT", `${path} is ${size} bytes, over the ${MAX_HF_CONFIG_BYTES}-byte limit`, path);
  try {
    const json = JSON.parse(await readFile(path, "utf8"));
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new Error("not an object");
    return json as HfConfigJson;
  } catch (cause) {
    return fail("UNKNOWN_FORMAT", `${path} is not a JSON object (${(cause as Error).message})`, path, cause);
  }
}

/**
 * Checks an HF config against the config inferred from the tensors: the activation must be
 * QuickGELU and heads must be width / 64 (the canonical layout infers both), the sizes must agree.
 */
export function checkHfConfig(hf: HfConfigJson, config: ClipConfig, path: string): void {
  if (hf.model_type !== undefined && hf.model_type !== "clip")
    fail(
      "UNSUPPORTED_MODEL",
      `${path}: model_type is ${JSON.stringify(hf.model_type)}, not "clip"`,
      "model_type",
    );
  const field = (
    tower: "text_config" | "vision_config",
    key: string,
    expected: number | string,
    fallback?: unknown,
  ) => {
    const value = hf[tower]?.[key] ?? fallback;
    if (value === undefined) return;
    if (value !== expected) {
      const code =
        key === "hidden_act" || key === "num_attention_heads" ? "UNSUPPORTED_MODEL" : "NOT_A_CLIP_MODEL";
      fail(
        code,
        `${path}: ${tower}.${key} is ${JSON.stringify(value)} but the weights need ${JSON.stringify(expected)}`,
        `${tower}.${key}`,
      );
    }
  };
  for (const tower of ["text_config", "vision_config"] as const) field(tower, "hidden_act", "quick_gelu");
  field("vision_config", "hidden_size", config.visionWidth);
  field("vision_config", "num_hidden_layers", config.visionLayers as number);
  field("vision_config", "num_attention_heads", config.visionHeads);
  field("vision_config", "patch_size", config.visionPatchSize ?? 0);
  field("vision_config", "image_size", config.imageResolution);
  field("text_config", "hidden_size", config.transformerWidth);
  field("text_config", "num_hidden_layers", config.transformerLayers);
  field("text_config", "num_attention_heads", config.transformerHeads);
  field("text_config", "max_position_embeddings", config.contextLength);
  field("text_config", "vocab_size", config.vocabSize);
  if (hf.projection_dim !== undefined && hf.projection_dim !== config.embedDim)
    fail(
      "NOT_A_CLIP_MODEL",
      `${path}: projection_dim is ${JSON.stringify(hf.projection_dim)} but the weights need ${config.embedDim}`,
      "projection_dim",
    );
}

export interface LayoutTensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

/**
 * Canonical tensors -> HF `CLIPModel` tensors: in_proj split into q/k/v, projections transposed,
 * everything else renamed. The inverse of `planFromHf`.
 */
export function canonicalToHf(tensors: readonly LayoutTensor[]): LayoutTensor[] {
  const out: LayoutTensor[] = [];
  for (const t of tensors) {
    const e = DTYPE_BYTES[t.dtype];
    const inProj = t.name.match(/^(visual\.)?transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$/);
    if (inProj) {
      const tower = inProj[1] ? "vision_model" : "text_model";
      const third = t.shape[0] / 3;
      const rowBytes = (t.data.byteLength / t.shape[0]) * third;
      ["q", "k", "v"].forEach((x, i) => {
        out.push({
          name: `${tower}.encoder.layers.${inProj[2]}.self_attn.${x}_proj.${inProj[3]}`,
          dtype: t.dtype,
          shape: [third, ...t.shape.slice(1)],
          data: t.data.slice(i * rowBytes, (i + 1) * rowBytes),
        });
      });
      continue;
    }
    const hfName = hfNameFor(t.name);
    if (!hfName) fail("UNKNOWN_TENSOR", `no Hugging Face name for ${t.name}`, t.name);
    if (t.name === "visual.proj" || t.name === "text_projection")
      out.push({
        name: hfName,
        dtype: t.dtype,
        shape: [t.shape[1], t.shape[0]],
        data: transpose2d(t.data, t.shape[0], t.shape[1], e),
      });
    else out.push({ name: hfName, dtype: t.dtype, shape: [...t.shape], data: t.data });
  }
  return out;
}
