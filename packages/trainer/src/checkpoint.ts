/**
 * Training checkpoints: everything a run needs to continue bit for bit after a kill.
 *
 * One safetensors file (written atomically: temporary name, fsync, rename), holding per masked
 * tensor NAME the F32 tensors `scores/NAME`, `adam_m/NAME`, `adam_v/NAME`, and in its metadata
 * `format` = "unmask-checkpoint", `format_version` = "1" and `state`: the JSON of CheckpointState
 * (options hash, global step, sampler state with the generator words and the epoch's
 * permutation, the per-epoch history and the current epoch's running sums). Gradient dropout
 * draws need no state: Philox is keyed by (seed, step).
 *
 * Float32 data is stored little-endian (the host order of every platform Node runs on).
 */
import { stat } from "node:fs/promises";
import { SafetensorsFile, UnmaskError, writeSafetensors } from "@unmask/clip";
import type { SamplerState } from "./data/sampler.js";
import type { EngineState } from "./engine.js";

export const CHECKPOINT_FORMAT = "unmask-checkpoint";
export const CHECKPOINT_VERSION = "1";

/** Loss and accuracy of one finished epoch. */
export interface EpochRecord {
  epoch: number;
  lr: number;
  /** Mean cross-entropy over the epoch's steps. */
  loss: number;
  lossKl: number;
  lossReg: number;
  /** Student top-1 accuracy on the augmented training batches. */
  accuracy: number;
  images: number;
}

/** Running sums of the epoch in progress. */
export interface EpochTotals {
  steps: number;
  images: number;
  lossCe: number;
  lossKl: number;
  lossReg: number;
  correct: number;
}

export interface CheckpointState {
  /** SHA-256 of everything that determines the result (train.ts trainingIdentity). */
  optionsHash: string;
  /** Steps taken so far (the next step's index). */
  globalStep: number;
  sampler: SamplerState;
  history: EpochRecord[];
  totals: EpochTotals;
  /** Seconds spent training before this checkpoint (for the report's time split). */
  trainSeconds: number;
}

export interface Checkpoint {
  state: CheckpointState;
  engine: EngineState;
}

const KINDS = ["scores", "adam_m", "adam_v"] as const;

function bytesOf(data: Float32Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export async function saveCheckpoint(
  path: string,
  checkpoint: Checkpoint,
  shapes: ReadonlyMap<string, readonly number[]>,
): Promise<void> {
  const { engine } = checkpoint;
  const maps = { scores: engine.scores, adam_m: engine.adamM, adam_v: engine.adamV };
  const tensors = [];
  for (const [name, shape] of shapes)
    for (const kind of KINDS) {
      const data = maps[kind].get(name);
      if (!data)
        throw new UnmaskError("BAD_CHECKPOINT", `${path}: engine state lacks ${kind} of ${name}`, {
          subject: name,
        });
      tensors.push({
        name: `${kind}/${name}`,
        dtype: "F32" as const,
        shape: [...shape],
        data: bytesOf(data),
      });
    }
  await writeSafetensors(path, tensors, {
    metadata: {
      format: CHECKPOINT_FORMAT,
      format_version: CHECKPOINT_VERSION,
      state: JSON.stringify(checkpoint.state),
    },
  });
}

/**
 * Reads a checkpoint, or returns null when `path` does not exist. Every masked tensor of
 * `shapes` must be present with that shape. Throws BAD_CHECKPOINT naming what is wrong.
 */
export async function loadCheckpoint(
  path: string,
  shapes: ReadonlyMap<string, readonly number[]>,
): Promise<Checkpoint | null> {
  if (!(await stat(path).catch(() => null))) return null;
  const fail = (message: string, subject = path): never => {
    throw new UnmaskError("BAD_CHECKPOINT", `${path}: ${message}`, { subject });
  };
  const file = await SafetensorsFile.open(path);
  try {
    const meta = file.metadata;
    if (meta.format !== CHECKPOINT_FORMAT)
      fail(`not an unmask checkpoint (format ${meta.format ?? "missing"})`);
    if (meta.format_version !== CHECKPOINT_VERSION)
      fail(`checkpoint version ${meta.format_version}, this trainer reads ${CHECKPOINT_VERSION}`);
    let state: CheckpointState;
    try {
      state = JSON.parse(meta.state ?? "");
    } catch {
      return fail("state metadata is not JSON", "state");
    }
    if (
      typeof state?.optionsHash !== "string" ||
      !Number.isSafeInteger(state.globalStep) ||
      typeof state.sampler !== "object" ||
      !Array.isArray(state.history) ||
      typeof state.totals !== "object"
    )
      fail("state metadata lacks a field", "state");
    const engine: EngineState = { scores: new Map(), adamM: new Map(), adamV: new Map() };
    const maps = { scores: engine.scores, adam_m: engine.adamM, adam_v: engine.adamV };
    for (const [name, shape] of shapes)
      for (const kind of KINDS) {
        const key = `${kind}/${name}`;
        const entry = file.tensors.get(key);
        if (!entry) fail(`no tensor ${key}`, key);
        if (entry?.dtype !== "F32" || entry.shape.join(",") !== shape.join(","))
          fail(`tensor ${key} is ${entry?.dtype} [${entry?.shape}], expected F32 [${shape}]`, key);
        maps[kind].set(name, await file.readFloat32(key));
      }
    if (file.tensors.size !== shapes.size * KINDS.length)
      fail(`holds ${file.tensors.size} tensors, expected ${shapes.size * KINDS.length}`);
    return { state, engine };
  } finally {
    await file.close();
  }
}
