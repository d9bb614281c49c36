/**
 * A base model loaded once per process, with any number of masks over it.
 *
 * Two ways to hand W' = M * W to onnxruntime (`weightSharing`):
 *
 * - "shared-session" (default on cpu): the initializers of the published R-AMT masked set
 *   (patch embedding, attention in/out projections) become graph inputs of ONE vision session
 *   that serves zero-shot (fed the base weights, read once) and every mask (fed its W'). The
 *   other weights are loaded (constant-folded, prepacked) once for all masks, and a mask costs
 *   its masked tensors in the stored dtype. Adding a mask creates no session. A mask over other
 *   tensors gets a session of its own with those tensors as inputs.
 * - "session-per-mask" (default on cuda, where per-run feeds would cross the bus): each mask gets
 *   its own session whose masked initializers carry W' inline (raw_data in an in-memory copy of
 *   the graph); the unmasked initializers still read model.safetensors. Each session holds its
 *   own copy of what onnxruntime derives from the weights (fp32 casts, prepacked GEMM panels).
 *
 * Zero-shot runs in "session-per-mask" mode use the unmodified graph. Text features are computed with text.onnx
 * and cached per (class list, templates).
 */
import { buildClassTextFeatures, type ClipConfig, defaultMaskedTensors } from "@unmask/clip";
import { type DecodedMask, decodeMask, type MaskHead, UnmaskError } from "@unmask/mask-format";
import { readMaskFile } from "@unmask/mask-format/node";
import { type FoldedWeight, foldMask, readBaseWeights } from "./mask-fold.js";
import { type ModelDir, type OnnxGraphFile, openModelDir } from "./model-dir.js";
import { initializersToInputs, redirectInitializers } from "./onnx/onnx-model.js";
import { createSession, type ExecutionProvider, ensureExecutionProvider, ort } from "./ort-session.js";

export type WeightSharing = "shared-session" | "session-per-mask";
export type Tower = "vision" | "text";

export interface LoadBaseModelOptions {
  /** A model directory written by `unmask convert`. */
  model: string;
  /** Default "cpu". */
  executionProvider?: ExecutionProvider;
  /** Default "shared-session" on cpu, "session-per-mask" on cuda. */
  weightSharing?: WeightSharing;
  intraOpNumThreads?: number;
}

/** A mask loaded over a base model. */
export interface MaskHandle {
  readonly id: number;
  readonly name: string;
  readonly mask: DecodedMask;
  readonly head: MaskHead | undefined;
  /** Bytes of W' held for this mask (the masked tensors in their stored dtype). */
  readonly maskedBytes: number;
}

interface MaskState {
  handle: MaskHandle;
  folded: FoldedWeight[];
  /** Per tower: initializer name -> W' tensor (shared-session), or null when not fed that way. */
  feeds: Record<Tower, Record<string, ort.Tensor> | null>;
  /** session-per-mask only: this mask's own sessions. */
  sessions: Partial<Record<Tower, Promise<ort.InferenceSession>>>;
}

const ONNX_FLOAT = 1;
const ONNX_FLOAT16 = 10;
const ORT_TYPE: Record<string, "float32" | "float16"> = { F32: "float32", F16: "float16" };

function tensorFor(weight: FoldedWeight, dims: number[]): ort.Tensor {
  const { bytes } = weight;
  const type = ORT_TYPE[weight.dtype];
  const data =
    type === "float32"
      ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
      : new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  return new ort.Tensor(type, data, dims);
}

export class BaseModel {
  readonly config: ClipConfig;
  readonly executionProvider: ExecutionProvider;
  readonly weightSharing: WeightSharing;
  private readonly plain: Partial<Record<Tower, Promise<ort.InferenceSession>>> = {};
  private readonly shared = new Map<string, Promise<ort.InferenceSession>>();
  private readonly common: Partial<Record<Tower, Set<string>>> = {};
  private readonly baseFeedCache: Partial<Record<Tower, Promise<Record<string, ort.Tensor>>>> = {};
  private readonly masks = new Map<number, MaskState>();
  private readonly textCache = new Map<string, Promise<Float32Array>>();
  private nextMaskId = 1;
  private logitScaleValue: Promise<number> | null = null;
  private disposed = false;

  private constructor(
    readonly modelDir: ModelDir,
    private readonly options: LoadBaseModelOptions,
  ) {
    this.config = modelDir.config;
    this.executionProvider = options.executionProvider ?? "cpu";
    this.weightSharing =
      options.weightSharing ?? (this.executionProvider === "cuda" ? "session-per-mask" : "shared-session");
  }

  /**
   * Opens the model directory and checks the execution provider. Sessions are created lazily.
   * @throws UnmaskError MODEL_DIR_INVALID, BAD_CONFIG, EXECUTION_PROVIDER_UNAVAILABLE, BAD_OPTION
   */
  static async load(options: LoadBaseModelOptions): Promise<BaseModel> {
    if (
      options.weightSharing !== undefined &&
      !["shared-session", "session-per-mask"].includes(options.weightSharing)
    )
      throw new UnmaskError("BAD_OPTION", `weightSharing must be "shared-session" or "session-per-mask"`, {
        subject: "weightSharing",
      });
    await ensureExecutionProvider(options.executionProvider ?? "cpu");
    return new BaseModel(await openModelDir(options.model), options);
  }

  get dir(): string {
    return this.modelDir.dir;
  }

  get hasTextTower(): boolean {
    return this.modelDir.text !== null;
  }

  /** exp(logit_scale), the temperature of CLIP's logits (100 for OpenAI's models). */
  logitScale(): Promise<number> {
    this.logitScaleValue ??= this.modelDir.weights.readFloat32("logit_scale").then((v) => Math.exp(v[0]));
    return this.logitScaleValue;
  }

  private graph(tower: Tower): OnnxGraphFile {
    const graph = tower === "vision" ? this.modelDir.vision : this.modelDir.text;
    if (!graph)
      throw new UnmaskError(
        "NO_TEXT_TOWER",
        `${this.dir} has no text.onnx: pass a mask with a classifier head, or a head, instead of class names`,
        { subject: "text.onnx" },
      );
    return graph;
  }

  private session(tower: Tower, bytes: Uint8Array, label: string): Promise<ort.InferenceSession> {
    return createSession(bytes, this.dir, this.options_(), `${this.graph(tower).path} (${label})`);
  }

  private options_() {
    return { executionProvider: this.executionProvider, intraOpNumThreads: this.options.intraOpNumThreads };
  }

  private plainSession(tower: Tower): Promise<ort.InferenceSession> {
    let s = this.plain[tower];
    if (!s) {
      s = this.session(tower, this.graph(tower).bytes, "unmasked");
      s.catch(() => delete this.plain[tower]);
      this.plain[tower] = s;
    }
    return s;
  }

  /**
   * Loads a mask (a .umask path, its bytes, or a decoded mask), checks it against this model
   * (FINGERPRINT_MISMATCH when it was made for another) and folds it into W'.
   * @throws UnmaskError FINGERPRINT_MISMATCH, MASK_TENSOR_MISMATCH, and mask-format's decode errors
   */
  async addMask(
    input: string | Uint8Array | DecodedMask,
    options: { name?: string } = {},
  ): Promise<MaskHandle> {
    this.assertOpen();
    const mask =
      typeof input === "string"
        ? await readMaskFile(input)
        : input instanceof Uint8Array
          ? decodeMask(input)
          : input;
    const folded = await foldMask(this.modelDir, mask);
    const feeds: MaskState["feeds"] = { vision: null, text: null };
    const canFeed = this.weightSharing === "shared-session" && folded.every((w) => w.dtype in ORT_TYPE);
    for (const tower of ["vision", "text"] as const) {
      const graph = tower === "vision" ? this.modelDir.vision : this.modelDir.text;
      if (!graph) continue;
      const perInit: Record<string, ort.Tensor> = {};
      for (const w of folded)
        for (const init of graph.initializersByTensor.get(w.tensor) ?? [])
          perInit[init.name] = tensorFor(w, init.dims);
      if (Object.keys(perInit).length > 0) feeds[tower] = perInit;
    }
    const handle: MaskHandle = {
      id: this.nextMaskId++,
      name: options.name ?? mask.source,
      mask,
      head: mask.head,
      maskedBytes: folded.reduce((sum, w) => sum + w.bytes.byteLength, 0),
    };
    const state: MaskState = { handle, folded, feeds, sessions: {} };
    if (!canFeed) state.feeds = { vision: null, text: null };
    this.masks.set(handle.id, state);
    // Build the sessions now, so the first request does not pay for it and errors surface here.
    for (const tower of ["vision", "text"] as const) {
      if (this.touches(state, tower) && (tower === "vision" || this.hasTextTower))
        await this.select(tower, state);
    }
    return handle;
  }

  /** Forgets a mask and the sessions only it used. */
  async removeMask(handle: MaskHandle): Promise<void> {
    const state = this.masks.get(handle.id);
    if (!state) return;
    this.masks.delete(handle.id);
    for (const s of Object.values(state.sessions)) await (await s).release();
  }

  private touches(state: MaskState, tower: Tower): boolean {
    const graph = tower === "vision" ? this.modelDir.vision : this.modelDir.text;
    return !!graph && state.folded.some((w) => graph.initializersByTensor.has(w.tensor));
  }

  /** Vision initializers of the published R-AMT masked set: graph inputs of the common session. */
  private commonInputs(tower: Tower): Set<string> {
    let names = this.common[tower];
    if (!names) {
      names = new Set<string>();
      const graph = tower === "vision" ? this.modelDir.vision : null;
      if (graph && this.weightSharing === "shared-session" && this.config.architecture === "vit")
        for (const tensor of defaultMaskedTensors(this.config, { patchEmbedding: true }))
          for (const init of graph.initializersByTensor.get(tensor) ?? [])
            if (init.dataType === ONNX_FLOAT || init.dataType === ONNX_FLOAT16) names.add(init.name);
      this.common[tower] = names;
    }
    return names;
  }

  /** The unmasked weights of the common inputs, read once (what zero-shot runs feed). */
  private baseFeeds(tower: Tower): Promise<Record<string, ort.Tensor>> {
    let pending = this.baseFeedCache[tower];
    if (!pending) {
      const graph = this.graph(tower);
      const wanted = this.commonInputs(tower);
      pending = (async () => {
        const feeds: Record<string, ort.Tensor> = {};
        for (const [tensor, inits] of graph.initializersByTensor) {
          const mine = inits.filter((i) => wanted.has(i.name));
          if (mine.length === 0) continue;
          const [weight] = await readBaseWeights(this.modelDir, [tensor]);
          for (const init of mine) feeds[init.name] = tensorFor(weight, init.dims);
        }
        return feeds;
      })();
      pending.catch(() => delete this.baseFeedCache[tower]);
      this.baseFeedCache[tower] = pending;
    }
    return pending;
  }

  private sharedSession(tower: Tower, names: Set<string>): Promise<ort.InferenceSession> {
    const key = `${tower}:${[...names].sort().join("|")}`;
    let s = this.shared.get(key);
    if (!s) {
      const graph = this.graph(tower);
      s = this.session(tower, initializersToInputs(graph.bytes, names, graph.path), "weights as inputs");
      s.catch(() => this.shared.delete(key));
      this.shared.set(key, s);
    }
    return s;
  }

  private perMaskSession(state: MaskState, tower: Tower): Promise<ort.InferenceSession> {
    let s = state.sessions[tower];
    if (!s) {
      const graph = this.graph(tower);
      const redirects = new Map<string, { rawData: Uint8Array }>();
      for (const w of state.folded)
        for (const init of graph.initializersByTensor.get(w.tensor) ?? [])
          redirects.set(init.name, { rawData: w.bytes });
      s = this.session(
        tower,
        redirectInitializers(graph.bytes, redirects, graph.path),
        `mask ${state.handle.name}`,
      );
      state.sessions[tower] = s;
    }
    return s;
  }

  /** The session and the weight feeds a run of `tower` under `state` (or zero-shot) uses. */
  private async select(
    tower: Tower,
    state: MaskState | undefined,
  ): Promise<{ session: ort.InferenceSession; feeds: Record<string, ort.Tensor> }> {
    const masked = state !== undefined && this.touches(state, tower);
    const maskFeeds = masked ? state.feeds[tower] : null;
    if (masked && !maskFeeds) return { session: await this.perMaskSession(state, tower), feeds: {} };
    const common = this.commonInputs(tower);
    if (common.size > 0 && (!maskFeeds || Object.keys(maskFeeds).every((n) => common.has(n)))) {
      // One session for zero-shot and every mask: base weights, overlaid with this mask's W'.
      const [session, base] = await Promise.all([this.sharedSession(tower, common), this.baseFeeds(tower)]);
      return { session, feeds: { ...base, ...maskFeeds } };
    }
    if (maskFeeds)
      return { session: await this.sharedSession(tower, new Set(Object.keys(maskFeeds))), feeds: maskFeeds };
    return { session: await this.plainSession(tower), feeds: {} };
  }

  private async run(
    tower: Tower,
    input: ort.Tensor,
    mask: MaskHandle | null | undefined,
  ): Promise<Float32Array> {
    this.assertOpen();
    const graph = this.graph(tower);
    const state = mask ? this.masks.get(mask.id) : undefined;
    if (mask && !state)
      throw new UnmaskError("UNKNOWN_MASK", `mask ${mask.name} is not loaded on this model (removed?)`, {
        subject: mask.name,
      });
    const selected = await this.select(tower, state);
    const session = selected.session;
    const feeds: Record<string, ort.Tensor> = { ...selected.feeds };
    const inputName = graph.summary.inputNames[0];
    feeds[inputName] = input;
    const outputName = graph.summary.outputNames[0];
    const result = await session.run(feeds, [outputName]);
    const output = result[outputName];
    const data = output.data as Float32Array;
    output.dispose?.();
    return data;
  }

  /**
   * Image embeddings (unnormalised, as OpenAI's encode_image) of `count` preprocessed images.
   * @param pixels Float32Array [count, 3, R, R]
   * @returns Float32Array [count, embedDim]
   */
  encodeImages(pixels: Float32Array, count: number, mask?: MaskHandle | null): Promise<Float32Array> {
    const r = this.config.imageResolution;
    if (pixels.length !== count * 3 * r * r)
      throw new UnmaskError(
        "BAD_INPUT",
        `pixels hold ${pixels.length} floats, ${count} images of 3x${r}x${r} need ${count * 3 * r * r}`,
        {
          subject: "pixels",
        },
      );
    return this.run("vision", new ort.Tensor("float32", pixels, [count, 3, r, r]), mask);
  }

  /**
   * Text embeddings (unnormalised) of `count` token rows.
   * @param ids Int32Array [count, contextLength]
   */
  encodeTexts(ids: Int32Array, count: number, mask?: MaskHandle | null): Promise<Float32Array> {
    return this.run("text", new ort.Tensor("int32", ids, [count, this.config.contextLength]), mask);
  }

  /**
   * L2-normalised class text features [classes, embedDim], cached per class list and templates.
   * @throws UnmaskError NO_TEXT_TOWER when the directory has no text.onnx
   */
  textFeatures(classNames: readonly string[], templates: readonly string[]): Promise<Float32Array> {
    this.graph("text");
    const key = JSON.stringify([classNames, templates]);
    let pending = this.textCache.get(key);
    if (!pending) {
      pending = buildClassTextFeatures({
        classNames,
        templates,
        contextLength: this.config.contextLength,
        encodeText: (ids, count) => this.encodeTexts(ids, count),
      });
      pending.catch(() => this.textCache.delete(key));
      this.textCache.set(key, pending);
    }
    return pending;
  }

  /** Masks currently loaded. */
  loadedMasks(): MaskHandle[] {
    return [...this.masks.values()].map((s) => s.handle);
  }

  private assertOpen(): void {
    if (this.disposed)
      throw new UnmaskError("DISPOSED", `the model ${this.dir} has been disposed`, { subject: this.dir });
  }

  /** Releases every session and closes the weights file. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const sessions = [
      ...Object.values(this.plain),
      ...this.shared.values(),
      ...[...this.masks.values()].flatMap((m) => Object.values(m.sessions)),
    ];
    this.masks.clear();
    for (const s of sessions) {
      try {
        await (await s).release();
      } catch {
        // a session that failed to build has nothing to release
      }
    }
    await this.modelDir.close();
  }
}

export function loadBaseModel(options: LoadBaseModelOptions): Promise<BaseModel> {
  return BaseModel.load(options);
}
