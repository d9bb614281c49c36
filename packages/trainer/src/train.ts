/**
 * `train()`: one R-AMT run from a model directory and a dataset to a .umask file and a report.
 *
 *   prepare (prepare.ts): model, masked tensors, datasets, few-shot list, text features, image cache
 *   engine: cpu or cuda, built from the float32 vision tower
 *   resume: a checkpoint with the same run identity restores scores, Adam moments, the step
 *           counter and the sampler (generator words, epoch, permutation, position)
 *   epochs: lr_e = lr * (1 + cos(pi e / E)) / 2; batches from the sampler (shuffle, crop boxes,
 *           flips drawn on the host); engine.step; a checkpoint after every epoch
 *   evaluate: zero-shot (teacher) and masked accuracy on the test split (evaluate.ts)
 *   output: mask bits = scores > threshold, packed MSB-first; the .umask (mask-format) carries
 *           the classifier head, recipe, seed, file-list hash and metrics; the report beside it
 *
 * An AbortSignal stops the run after the current step: the state is saved to the checkpoint and
 * `train` throws UnmaskError INTERRUPTED; `resume: true` continues it to the identical result.
 *
 * Several GPUs (`gpus` > 1): train() launches one worker per GPU (distributed/train-launch.ts),
 * each running train() with `distributed` set (distributed/train-rank.ts): it steps on its rows
 * of every batch, and rank 0 alone evaluates and writes checkpoints, the mask and the report.
 */
import { rm } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { type EncodeText, isUnmaskError, UnmaskError, writeFileAtomic } from "@unmask/clip";
import { type CheckpointState, type EpochTotals, loadCheckpoint, saveCheckpoint } from "./checkpoint.js";
import type { Dataset } from "./data/dataset.js";
import type { TrainList } from "./data/few-shot.js";
import { clipImageIo, type ImageIo } from "./data/image-io.js";
import { EpochSampler } from "./data/sampler.js";
import { launchTraining, trainGpus } from "./distributed/train-launch.js";
import { joinTrainRank, type TrainRankContext } from "./distributed/train-rank.js";
import {
  DEFAULT_HYPER,
  DEFAULT_PRECISION,
  type EngineFactory,
  type EngineState,
  PRECISIONS,
  type Precision,
  type RmtHyper,
  type TrainBatch,
} from "./engine.js";
import { type EngineName, engineFactory } from "./engine-factory.js";
import { evaluate } from "./evaluate.js";
import { DEFAULT_EVAL_BATCH, type PresetName, positive, presetSettings } from "./options.js";
import { buildRunOutput } from "./output.js";
import { identityHash, type MaskedTensorsOption, type Prepared, prepareRun } from "./prepare.js";
import type { OnTrainProgress } from "./progress.js";
import { type TrainReport, writeReport } from "./report.js";
import { cosineLearningRate } from "./rmt/schedule.js";
import { encodeTextCpu } from "./text-encoder.js";

export interface TrainOptions {
  /** Model directory (config.json + model.safetensors), as `unmask convert` writes it. */
  model: string;
  /** Training data: a path (image folder, folder with train/ and test/, CoOp split JSON) or a Dataset. */
  data: string | Dataset;
  /** Test data; null to skip evaluation; default: the test split found with `data`. */
  testData?: string | Dataset | null;
  /** Images per class (default 16); ignored when `trainList` is given. */
  shots?: number;
  /** Seed of the few-shot sampling, the augmentation stream and gradient dropout (default 1). */
  seed?: number;
  /** A file list (or its path) choosing the training images instead of sampling. */
  trainList?: string | TrainList;
  /** "cpu" (default) or "cuda". */
  engine?: EngineName;
  /** Injects an engine constructor instead (tests, custom backends). */
  engineFactory?: EngineFactory;
  /**
   * The cuda engine's 16-bit type of activations and GEMM operands: "fp16" (default) or "bf16"
   * (README "Precision"). The cpu engine computes in fp32 and ignores it.
   */
  precision?: Precision;
  preset?: PresetName;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  /** Gradient-dropout lambda. */
  lambda?: number;
  /** Other recipe constants (threshold, score init, regulariser weight, KL temperature, Adam). */
  hyper?: Partial<RmtHyper>;
  maskedTensors?: MaskedTensorsOption;
  /** Prompt template(s) with `{}` for the class name (default "a photo of a {}."). */
  template?: string | string[];
  /** Where the .umask goes (the report beside it); null keeps everything in memory. */
  out?: string | null;
  /** Checkpoint path; default `<out>.ckpt`; null disables checkpoints. */
  checkpoint?: string | null;
  /** Continue from the checkpoint when it exists (it must come from the same settings). */
  resume?: boolean;
  /** Side of the square uint8 training cache (default: the model resolution). */
  cacheSize?: number;
  evalBatchSize?: number;
  /** Evaluate on N test images only (an even spread over the set). */
  evalLimit?: number;
  /** Also evaluate zero-shot CLIP (the teacher) for the before figure (default true). */
  evaluateZeroShot?: boolean;
  io?: ImageIo;
  /** The text tower; default: the cpu text encoder on the model's weights. */
  encodeText?: (model: Prepared["model"]) => EncodeText;
  signal?: AbortSignal;
  onProgress?: OnTrainProgress;
  /**
   * GPUs of this host to train on (default 1). Above 1, train() starts one worker process per GPU,
   * each training on its share of every batch (README "Several GPUs"). Needs the cuda engine and
   * options that travel to the workers as JSON: no engineFactory, io or encodeText, datasets as
   * paths or with file sources. @throws UnmaskError BAD_OPTION otherwise
   */
  gpus?: number;
  /** Set inside a worker of a several-GPU run (distributed/train-worker.ts): this rank's world. */
  distributed?: TrainRankContext;
}

export interface TrainResult {
  report: TrainReport;
  /** The encoded .umask file. */
  maskBytes: Uint8Array;
  masks: { name: string; shape: number[]; bits: Uint8Array }[];
  maskPath: string | null;
  reportPath: string | null;
}

const EMPTY_TOTALS: EpochTotals = { steps: 0, images: 0, lossCe: 0, lossKl: 0, lossReg: 0, correct: 0 };

export async function train(options: TrainOptions): Promise<TrainResult> {
  if (trainGpus(options) > 1 && !options.distributed) return launchTraining(options);
  const started = performance.now();
  const { onProgress, signal } = options;
  const preset = presetSettings(options.preset ?? "recipe");
  const epochs = positive(options.epochs ?? preset.epochs, "epochs", true);
  const batchSize = positive(options.batchSize ?? preset.batchSize, "batchSize", true);
  const lr = positive(options.lr ?? preset.lr, "lr");
  const lambda = options.lambda ?? preset.lambda;
  if (!(lambda >= 0 && lambda <= 1))
    throw new UnmaskError("BAD_OPTION", `lambda ${lambda} must lie in [0, 1]`, { subject: "lambda" });
  const hyper: RmtHyper = { ...DEFAULT_HYPER, ...options.hyper, gdrLambda: lambda };
  const seed = options.seed ?? 1;
  const evalBatch = positive(options.evalBatchSize ?? DEFAULT_EVAL_BATCH, "evalBatchSize", true);
  const engineName = options.engine ?? "cpu";
  const precision = options.precision ?? DEFAULT_PRECISION;
  if (!PRECISIONS.includes(precision))
    throw new UnmaskError("BAD_OPTION", `precision ${precision} is not bf16 or fp16`, {
      subject: "precision",
    });
  const out = options.out ?? null;
  const checkpointPath = options.checkpoint === undefined ? (out ? `${out}.ckpt` : null) : options.checkpoint;
  const io = options.io ?? clipImageIo;
  const templates = options.template === undefined ? undefined : [options.template].flat();

  const prepared = await prepareRun({
    model: options.model,
    data: options.data,
    testData: options.testData,
    shots: options.shots ?? 16,
    seed,
    trainList: options.trainList,
    maskedTensors: options.maskedTensors,
    templates,
    cacheSize: options.cacheSize,
    io,
    encodeText: options.encodeText ?? cpuTextEncoder,
    signal,
    onProgress,
  }).catch(interrupted(signal, "stopped before training started; nothing was saved"));
  const { engineModel, trainItems } = prepared;
  // The images may still be decoding (prepare.ts): the engine starts meanwhile, and whatever stops
  // the run before the cache is in hand stops the decoding too.
  const { rank, engine } = await (async () => {
    // Every step takes min(batch, set size) images (sampler.ts): the global batch the ranks share.
    const rank = options.distributed
      ? await joinTrainRank(options.distributed, Math.min(batchSize, trainItems.length))
      : null;
    onProgress?.({
      status: "prepare",
      stage: "engine",
      done: 0,
      total: 1,
      message: `starting the ${engineName} engine`,
    });
    const create = options.engineFactory ?? (await engineFactory(engineName));
    const engine = await create(engineModel, {
      maxBatch: Math.max(batchSize, evalBatch),
      hyper,
      seed,
      precision,
      ...(rank?.dp.engineOptions ? { distributed: rank.dp.engineOptions } : {}),
    });
    return { rank, engine };
  })().catch(async (error) => {
    await prepared.stopDecoding();
    throw error;
  });
  const writer = rank?.isWriter ?? true;
  const outPath = writer ? out : null;
  const shapes = new Map(
    engineModel.maskedTensors.map((n) => [n, engineModel.weights.get(n)?.shape as number[]] as const),
  );

  // the checkpoint being written in the background, and the arrays its snapshot filled (free again
  // once it is done); the engine is disposed only after the write (it may read engine memory)
  let pendingWrite: Promise<void> | undefined;
  let snapshotArrays: EngineState | undefined;
  try {
    rank?.dp.assertEngineJoined(engine.name);
    const cache = await prepared.cache.catch(
      interrupted(signal, "stopped before training started; nothing was saved"),
    );
    await engine.setImageCache(cache.cache);
    const sampler = new EpochSampler({ sizes: cache.sizes, batchSize, seed });
    const totalSteps = sampler.steps * epochs;
    // what the report, the mask's recipe and the checkpoint's identity name: the cuda engine with
    // its precision ("cuda-fp16"), so that a run resumes only in the precision it began in
    const engineLabel = engine.name === "cuda" ? `cuda-${precision}` : engine.name;
    const optionsHash = identityHash({
      fingerprint: prepared.fingerprint,
      maskedTensors: engineModel.maskedTensors,
      classNames: prepared.train.classNames,
      templates: prepared.templates,
      fileListSha256: prepared.fileListSha256,
      seed,
      epochs,
      batchSize,
      lr,
      hyper,
      cacheSize: prepared.cacheSize,
      engine: engineLabel,
    });

    let state: CheckpointState = {
      optionsHash,
      globalStep: 0,
      sampler: sampler.getState(),
      history: [],
      totals: { ...EMPTY_TOTALS },
      trainSeconds: 0,
    };
    if (options.resume && checkpointPath) {
      const checkpoint = await loadCheckpoint(checkpointPath, shapes);
      if (checkpoint) {
        if (checkpoint.state.optionsHash !== optionsHash)
          throw new UnmaskError(
            "CHECKPOINT_MISMATCH",
            `${checkpointPath} was written by a run with other settings (model, data, file list, seed or recipe); remove it or run without --resume`,
            { subject: checkpointPath },
          );
        await engine.setState(checkpoint.engine);
        sampler.setState(checkpoint.state.sampler);
        state = checkpoint.state;
        // rank 0's checkpoint holds the world's totals of the unfinished epoch
        if (!writer) state.totals = { ...EMPTY_TOTALS };
        onProgress?.({
          status: "resume",
          checkpoint: checkpointPath,
          epoch: state.sampler.epoch,
          globalStep: state.globalStep,
        });
      }
    }
    const prepareSeconds = (performance.now() - started) / 1000;

    // The epoch-end checkpoint is written while the next epoch trains (a ViT-B/16's scores and
    // Adam moments are ~350 MB, ~0.5 s with the fsync): `save` takes the snapshot (the engine's
    // snapshotState queues its copy behind the steps without waiting, else getState copies; the
    // run state is cloned) and leaves the write pending; the next save, an abort and the end of
    // training wait for it, so writes stay in order and a failed write still fails the run.
    const finishWrite = async () => {
      const write = pendingWrite;
      pendingWrite = undefined;
      await write;
    };
    /** A copy of the engine's state, into the arrays of the last copy (free once its write is done). */
    const copyState = async () => {
      snapshotArrays = await engine.getState(snapshotArrays);
      return snapshotArrays;
    };
    const save = async (epoch: number, inBackground = false) => {
      await finishWrite();
      // every rank compares its scores first (a collective), so ranks copy before the write
      const copied = rank ? await copyState() : null;
      if (rank && copied) await rank.dp.checkReplicas(`scores/${state.globalStep}`, copied.scores);
      if (!checkpointPath || !writer) return;
      state.sampler = sampler.getState();
      const runState = structuredClone(state);
      const globalStep = state.globalStep;
      const snapshot = copied ? Promise.resolve(copied) : (engine.snapshotState?.() ?? copyState());
      const write = snapshot.then(async (engineState) => {
        await saveCheckpoint(checkpointPath, { state: runState, engine: engineState }, shapes);
        onProgress?.({ status: "checkpoint", path: checkpointPath, epoch, globalStep });
      });
      if (!inBackground) return write;
      pendingWrite = write;
      write.catch(() => undefined); // reported by finishWrite
    };

    /** The world's totals on rank 0 (collective with several ranks). */
    const worldTotals = async () =>
      rank ? rank.combineTotals(`totals/${state.globalStep}`, state.totals) : state.totals;

    // ---- the epochs ----
    const sessionStart = performance.now();
    const stepsAtSessionStart = state.globalStep;
    let sessionImages = 0;
    for (let epoch = 0; epoch < epochs; epoch++) {
      const samplerEpoch = sampler.getState().epoch;
      if (samplerEpoch > epoch) continue; // finished before a resume
      if (samplerEpoch < epoch) {
        sampler.startEpoch(epoch);
        state.totals = { ...EMPTY_TOTALS };
      }
      const epochLr = cosineLearningRate(lr, epoch, epochs);
      const epochStart = performance.now();
      onProgress?.({ status: "epoch-start", epoch, epochs, lr: epochLr, steps: sampler.steps });
      while (sampler.hasNext) {
        const { batchInEpoch, crops } = sampler.next();
        const labels = Int32Array.from(crops.indices, (i) => trainItems[i].label);
        const global: TrainBatch = { labels, crops };
        // this rank's rows, and their share of the batch means (1 in a single process)
        const { batch, weight } = rank ? rank.shard(global) : { batch: global, weight: 1 };
        const result = await engine.step(batch, { lr: epochLr, step: state.globalStep });
        if (!Number.isFinite(result.lossCe) || !Number.isFinite(result.lossKl))
          throw new UnmaskError(
            "NON_FINITE_LOSS",
            `step ${state.globalStep + 1} gave a loss of ${result.lossCe} (cross-entropy), ${result.lossKl} (KL)` +
              (engineLabel === "cuda-fp16" ? ": a value past fp16's range? Train with precision bf16" : ""),
            { subject: "loss" },
          );
        // An engine that waits for its device synchronously never lets the event loop turn
        // within an epoch: give the checkpoint being written in the background one turn a step
        // (its snapshot's poll and file-system completions), or it would only progress at the
        // next save, which would then wait for it.
        if (pendingWrite) await new Promise((resolve) => setImmediate(resolve));
        const n = batch.labels.length;
        state.globalStep++;
        const t = state.totals;
        t.steps++;
        t.images += n;
        t.lossCe += weight * result.lossCe;
        t.lossKl += weight * result.lossKl;
        t.lossReg += weight * result.lossReg;
        t.correct += result.correct;
        sessionImages += labels.length;
        const sessionSeconds = (performance.now() - sessionStart) / 1000;
        const secondsPerStep = sessionSeconds / (state.globalStep - stepsAtSessionStart);
        onProgress?.({
          status: "step",
          epoch,
          epochs,
          step: batchInEpoch,
          steps: sampler.steps,
          globalStep: state.globalStep,
          totalSteps,
          loss: result.lossCe,
          lossKl: result.lossKl,
          accuracy: result.correct / n,
          imagesPerSecond: sessionImages / sessionSeconds,
          etaSeconds: secondsPerStep * (totalSteps - state.globalStep),
        });
        const aborted = signal?.aborted ?? false;
        if (rank ? await rank.agreeToStop(state.globalStep, aborted) : aborted) {
          state.trainSeconds += (performance.now() - sessionStart) / 1000;
          if (rank) state.totals = await worldTotals();
          await save(epoch);
          throw new UnmaskError(
            "INTERRUPTED",
            checkpointPath
              ? `stopped after step ${state.globalStep} of ${totalSteps}; the state is in ${checkpointPath}, continue with --resume`
              : `stopped after step ${state.globalStep} of ${totalSteps} (no checkpoint path, nothing saved)`,
            { subject: checkpointPath ?? "checkpoint" },
          );
        }
      }
      if (state.history.length === epoch) {
        const t = await worldTotals();
        state.history.push({
          epoch,
          lr: epochLr,
          loss: t.lossCe / t.steps,
          lossKl: t.lossKl / t.steps,
          lossReg: t.lossReg / t.steps,
          accuracy: t.correct / t.images,
          images: t.images,
        });
        const last = state.history[epoch];
        onProgress?.({
          status: "epoch-end",
          epoch,
          epochs,
          loss: last.loss,
          accuracy: last.accuracy,
          seconds: (performance.now() - epochStart) / 1000,
        });
      }
      // also after the last epoch when an evaluation follows (an interrupted one then resumes
      // without retraining); a single process with nothing to evaluate writes the mask next
      if (epoch < epochs - 1 || prepared.test || rank) {
        const trainSoFar = state.trainSeconds;
        state.trainSeconds = trainSoFar + (performance.now() - sessionStart) / 1000;
        await save(epoch, true);
        state.trainSeconds = trainSoFar;
      }
    }
    await finishWrite();
    const trainSeconds = state.trainSeconds + (performance.now() - sessionStart) / 1000;
    rank?.dispose(); // every rank is here: the communicator goes (collective)

    // ---- evaluation ----
    const evalStart = performance.now();
    const evaluation =
      prepared.test && writer
        ? await evaluate({
            engine,
            dataset: prepared.test,
            resolution: engineModel.config.imageResolution,
            io,
            batchSize: evalBatch,
            limit: options.evalLimit,
            models: options.evaluateZeroShot === false ? ["masked"] : ["zero-shot", "masked"],
            signal,
            onProgress: (done, total) => onProgress?.({ status: "evaluate", done, total }),
          }).catch(
            interrupted(
              signal,
              checkpointPath
                ? `stopped during the evaluation; training is saved in ${checkpointPath}, --resume evaluates it`
                : "stopped during the evaluation",
            ),
          )
        : null;
    const evaluateSeconds = (performance.now() - evalStart) / 1000;

    // ---- the mask and the report ----
    const { maskBytes, masks, report, reportPath } = buildRunOutput({
      prepared,
      // the snapshot buffer is free once the last checkpoint is written; its copy skips the
      // fresh arrays getState fills (only the bits derived from the scores are kept)
      scores: (await (engine.snapshotState?.() ?? engine.getState())).scores,
      preset: options.preset ?? "recipe",
      settings: { epochs, batchSize, lr, lambda },
      hyper,
      engine: engineLabel,
      seed,
      evaluation,
      history: state.history,
      out: outPath,
      modelPath: options.model,
      time: {
        prepareSeconds,
        trainSeconds,
        evaluateSeconds,
        totalSeconds: (performance.now() - started) / 1000,
      },
    });
    if (outPath && reportPath) {
      await writeFileAtomic(outPath, maskBytes);
      await writeReport(reportPath, report);
      if (checkpointPath) await rm(checkpointPath, { force: true });
    }
    onProgress?.({ status: "done", report, maskPath: outPath, reportPath });
    return { report, maskBytes, masks, maskPath: outPath, reportPath };
  } finally {
    await prepared.stopDecoding(); // a no-op once the cache is in hand
    await pendingWrite?.catch(() => undefined);
    await engine.dispose();
  }
}

/** Turns the abort of a phase that keeps no partial state into INTERRUPTED with `message`. */
function interrupted(signal: AbortSignal | undefined, message: string): (error: unknown) => never {
  return (error) => {
    if (signal?.aborted && !isUnmaskError(error, "INTERRUPTED"))
      throw new UnmaskError("INTERRUPTED", message, { cause: error });
    throw error;
  };
}

/** The model's text tower on the cpu (src/text-encoder.ts). */
function cpuTextEncoder(model: Prepared["model"]): EncodeText {
  return async (tokens, count) => encodeTextCpu(model, tokens, count);
}
