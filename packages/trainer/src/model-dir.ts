/**
 * Loads a converted model directory (config.json + model.safetensors, canonical OpenAI names) as
 * float32 tensors for training: the vision tower for the engine, the text tower for the class
 * text features. A bare .safetensors file works too (the config is then inferred from shapes).
 */
import { readFile, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { type ClipConfig, configFromJson, inferConfig, SafetensorsFile, UnmaskError } from "@unmask/clip";
import type { FloatTensor } from "./engine.js";

export interface LoadedModel {
  /** The model.safetensors path. */
  weightsPath: string;
  config: ClipConfig;
  /** config.json's model_name, or the folder name. */
  modelName: string | null;
  /** `visual.*` tensors, float32. */
  vision: Map<string, FloatTensor>;
  /** Every other floating tensor (text tower, logit_scale), float32. */
  text: Map<string, FloatTensor>;
  /** exp(logit_scale). */
  logitScale: number;
}

/** A model folder's (or bare .safetensors file's) configuration, without reading its weights. */
export async function readModelConfig(
  path: string,
): Promise<{ weightsPath: string; config: ClipConfig; modelName: string | null }> {
  const { file, weightsPath, config, modelName } = await openModel(path);
  await file.close();
  return { weightsPath, config, modelName };
}

export async function loadModelDir(path: string): Promise<LoadedModel> {
  const { file, weightsPath, config, modelName } = await openModel(path);
  try {
    const vision = new Map<string, FloatTensor>();
    const text = new Map<string, FloatTensor>();
    for (const entry of file.tensors.values()) {
      if (!(entry.dtype.startsWith("F") || entry.dtype === "BF16")) continue;
      const tensor = { shape: entry.shape, data: await file.readFloat32(entry.name) };
      (entry.name.startsWith("visual.") ? vision : text).set(entry.name, tensor);
    }
    const scale = text.get("logit_scale")?.data;
    if (scale?.length !== 1)
      throw new UnmaskError("NOT_A_CLIP_MODEL", `${weightsPath}: no scalar logit_scale`, {
        subject: "logit_scale",
      });
    return { weightsPath, config, modelName, vision, text, logitScale: Math.exp(scale[0]) };
  } finally {
    await file.close();
  }
}

/**
 * The weights file opened (header read) with the configuration: config.json when the folder has
 * one, else the one the tensor shapes imply. The caller closes the file.
 */
async function openModel(path: string): Promise<{
  file: SafetensorsFile;
  weightsPath: string;
  config: ClipConfig;
  modelName: string | null;
}> {
  const info = await stat(path).catch(() => null);
  if (!info)
    throw new UnmaskError("MODEL_NOT_FOUND", `${path}: no such model folder (run unmask convert first)`, {
      subject: path,
    });
  const isDirectory = info.isDirectory();
  const weightsPath = isDirectory ? join(path, "model.safetensors") : path;
  const configPath = isDirectory ? join(path, "config.json") : null;
  const file = await SafetensorsFile.open(weightsPath);
  try {
    let config: ClipConfig;
    let modelName: string | null = isDirectory ? basename(path) : null;
    const configText = configPath ? await readFile(configPath, "utf8").catch(() => null) : null;
    if (configText !== null) {
      let json: { model_name?: unknown };
      try {
        json = JSON.parse(configText);
      } catch (cause) {
        throw new UnmaskError("BAD_CONFIG", `${configPath}: not valid JSON`, {
          cause,
          subject: configPath ?? "",
        });
      }
      config = configFromJson(json, configPath ?? "config.json");
      if (typeof json.model_name === "string") modelName = json.model_name;
    } else {
      config = inferConfig(new Map([...file.tensors].map(([name, e]) => [name, e.shape])));
    }
    if (config.architecture !== "vit")
      throw new UnmaskError("UNSUPPORTED_MODEL", `${weightsPath}: only ViT CLIP models can be trained`, {
        subject: weightsPath,
      });
    return { file, weightsPath, config, modelName };
  } catch (error) {
    await file.close();
    throw error;
  }
}
