/**
 * Recipe presets and defaults (docs/rmt-method.md sections 3-5); the schedule lives in rmt/schedule.ts.
 *
 * - `recipe`: the published configs: lr 8e-5, 30 epochs, batch 32, gradient-dropout lambda 1.0.
 * - `rmt-16shot`: the same with lambda 0.3, the value the published README recommends for 16-shot
 *   runs on most datasets (all but ImageNet, SUN397 and Food101).
 * - `imagenet`: ImageNet-scale: lr 3e-5, 10 epochs, lambda 1.0.
 */
import { UnmaskError } from "@unmask/clip";

export type PresetName = "recipe" | "rmt-16shot" | "imagenet";

export interface RecipeSettings {
  epochs: number;
  batchSize: number;
  lr: number;
  /** Gradient-dropout lambda. */
  lambda: number;
}

export const PRESETS: Readonly<Record<PresetName, RecipeSettings>> = {
  recipe: { epochs: 30, batchSize: 32, lr: 8e-5, lambda: 1 },
  "rmt-16shot": { epochs: 30, batchSize: 32, lr: 8e-5, lambda: 0.3 },
  imagenet: { epochs: 10, batchSize: 32, lr: 3e-5, lambda: 1 },
};

/** Test-time batch of the recipe (only memory depends on it). */
export const DEFAULT_EVAL_BATCH = 100;

export function presetSettings(name: string): RecipeSettings {
  const preset = PRESETS[name as PresetName];
  if (!preset)
    throw new UnmaskError(
      "BAD_OPTION",
      `unknown preset ${name}; choose one of ${Object.keys(PRESETS).join(", ")}`,
      { subject: "preset" },
    );
  return preset;
}

/**
 * The learning rate of a 0-based epoch: rmt/schedule.ts's cosineLearningRate under the name the
 * package has exported since the first release.
 */
export { cosineLearningRate as cosineLr } from "./rmt/schedule.js";

/** Checks a positive number option and names it. */
export function positive(value: number, name: string, integer = false): number {
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value)))
    throw new UnmaskError(
      "BAD_OPTION",
      `${name} must be a positive ${integer ? "integer" : "number"}, not ${value}`,
      {
        subject: name,
      },
    );
  return value;
}
