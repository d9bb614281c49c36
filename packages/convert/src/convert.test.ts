import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ClipConfig,
  configFromJson,
  configToJson,
  type DType,
  encodeSafetensors,
  f16ToF32,
  inferConfig,
  isUnmaskError,
  SafetensorsFile,
} from "@unmask/clip";
import { fixturePath, repoRoot } from "@unmask/fixtures";
import { beforeAll, describe, expect, it } from "vitest";
import { type ConvertOptions, type ConvertProgress, convert as convertWithOnnx } from "./convert.js";
import { canonicalToHf, type LayoutTensor } from "./hf-layout.js";
import { OFFICIAL_RELEASES, officialReleaseFor } from "./official-models.js";
import { vitTensorShapes } from "./testing/clip-shapes.js";
import {
  type ArchiveTensor,
  PickleWriter,
  writeRawTorchZip,
  writeTensor,
  writeTorchArchive,
} from "./testing/torch-writer.js";

/** These tests cover the weights; the ONNX step has its own tests (onnx/), so it is off here. */
const convert = (input: string, outDir: string, options: ConvertOptions = {}) =>
  convertWithOnnx(input, outDir, { onnx: false, ...options });

const work = mkdtempSync(join(tmpdir(), "unmask-convert-"));
let counter = 0;
const freshOut = () => join(work, `out-${counter++}`);

/** The config in tiny-vit-p8/meta.json, in ClipConfig form. */
const TINY_CONFIG = {
  architecture: "vit",
  embedDim: 64,
  imageResolution: 32,
  visionLayers: 2,
  visionWidth: 128,
  visionPatchSize: 8,
  visionHeads: 2,
  contextLength: 77,
  vocabSize: 49408,
  transformerWidth: 64,
  transformerHeads: 1,
  transformerLayers: 2,
};

async function readAll(path: string): Promise<{ tensors: LayoutTensor[]; metadata: Record<string, string> }> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors: LayoutTensor[] = [];
    for (const entry of file.tensors.values())
      tensors.push({
        name: entry.name,
        dtype: entry.dtype,
        shape: entry.shape,
        data: await file.readBytes(entry.name),
      });
    tensors.sort((a, b) => (a.name < b.name ? -1 : 1));
    return { tensors, metadata: file.metadata };
  } finally {
    await file.close();
  }
}

function expectSameTensors(a: LayoutTensor[], b: LayoutTensor[]): void {
  expect(a.map((t) => t.name)).toEqual(b.map((t) => t.name));
  for (let i = 0; i < a.length; i++) {
    expect({ name: a[i].name, dtype: a[i].dtype, shape: a[i].shape }).toEqual({
      name: b[i].name,
      dtype: b[i].dtype,
      shape: b[i].shape,
    });
    expect(Buffer.compare(Buffer.from(a[i].data), Buffer.from(b[i].data)), a[i].name).toBe(0);
  }
}

async function codeOf(run: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await run();
  } catch (error) {
    if (isUnmaskError(error)) return error.code;
    throw error;
  }
  return undefined;
}

/** Asserts that a failed conversion left neither the output nor a temporary directory. */
function expectNothingWritten(outDir: string): void {
  expect(existsSync(outDir)).toBe(false);
  expect(readdirSync(work).filter((n) => n.endsWith(".tmp"))).toEqual([]);
}

const FORMATS = {
  torchscript: "tiny-vit-p8/model.jit.pt",
  "torch-zip": "tiny-vit-p8/model.state_dict.pt",
  "torch-legacy": "tiny-vit-p8/model.legacy.pt",
  "hf-safetensors": "tiny-vit-p8/hf/model.safetensors",
} as const;

let reference: { tensors: LayoutTensor[]; metadata: Record<string, string> };

beforeAll(async () => {
  const out = freshOut();
  await convert(fixturePath(FORMATS.torchscript), out);
  reference = await readAll(join(out, "model.safetensors"));
});

describe("convert: every input format gives the same canonical tensors", () => {
  it.each(Object.entries(FORMATS))("%s", async (format, fixture) => {
    const out = freshOut();
    const result = await convert(fixturePath(fixture), out);
    expect(result.sourceFormat).toBe(format);
    expect(result.dtype).toBe("F16");
    expect(result.tensorCount).toBe(62);
    expect(result.config).toEqual(TINY_CONFIG);
    expect(result.files).toEqual(["config.json", "model.safetensors"]);
    const { tensors, metadata } = await readAll(join(out, "model.safetensors"));
    expectSameTensors(tensors, reference.tensors);
    const sha = createHash("sha256")
      .update(readFileSync(fixturePath(fixture)))
      .digest("hex");
    expect(metadata.format).toBe("unmask-clip");
    expect(metadata.source_sha256).toBe(sha);
    expect(metadata.source_format).toBe(format);
    expect(metadata.dtype).toBe("F16");
    expect(metadata.model_name).toBe("");
    const configJson = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    expect(JSON.parse(metadata.config)).toEqual(configJson);
    expect(configJson).toEqual(
      configToJson(result.config, { modelName: null, dtype: "F16", sourceSha256: sha }),
    );
    expect(configFromJson(configJson)).toEqual(TINY_CONFIG);
  });

  it("agree at fp32 too, each value the exact widening of the fp16 one", async () => {
    const outs: LayoutTensor[][] = [];
    for (const fixture of [FORMATS.torchscript, FORMATS["torch-legacy"], FORMATS["hf-safetensors"]]) {
      const out = freshOut();
      const result = await convert(fixturePath(fixture), out, { dtype: "fp32" });
      expect(result.dtype).toBe("F32");
      outs.push((await readAll(join(out, "model.safetensors"))).tensors);
    }
    expectSameTensors(outs[1], outs[0]);
    expectSameTensors(outs[2], outs[0]);
    const half = reference.tensors.find((t) => t.name === "visual.proj")!;
    const full = outs[0].find((t) => t.name === "visual.proj")!;
    expect(full.dtype).toBe("F32");
    const h = new Uint16Array(half.data.buffer, half.data.byteOffset, half.data.byteLength / 2);
    const f = new Float32Array(full.data.buffer, full.data.byteOffset, full.data.byteLength / 4);
    expect(f.length).toBe(h.length);
    for (let i = 0; i < h.length; i += 97) expect(f[i]).toBe(f16ToF32(h[i]));
  });

  it("infers the config of tiny-vit-p8/meta.json from the shapes", () => {
    const shapes = new Map(reference.tensors.map((t) => [t.name, t.shape]));
    expect(inferConfig(shapes)).toEqual(TINY_CONFIG);
    // ... and the test writer's shape table agrees with the real model's.
    const table = vitTensorShapes(inferConfig(shapes));
    expect([...table.keys()].sort()).toEqual([...shapes.keys()].sort());
    for (const [name, shape] of shapes) expect(table.get(name), name).toEqual(shape);
  });

  it("round-trips through the Hugging Face layout", async () => {
    const hf = canonicalToHf(reference.tensors);
    // The HF tensors we produce are the fixture's HF tensors, bit for bit.
    const fixtureHf = await readAll(fixturePath(FORMATS["hf-safetensors"]));
    hf.sort((a, b) => (a.name < b.name ? -1 : 1));
    expectSameTensors(hf, fixtureHf.tensors);
    // ... and converting them back gives the canonical tensors again.
    const dir = join(work, "hf-roundtrip");
    mkdirSync(dir);
    writeFileSync(join(dir, "model.safetensors"), encodeSafetensors(hf));
    await copyFile(fixturePath("tiny-vit-p8/hf/config.json"), join(dir, "config.json"));
    const out = freshOut();
    const result = await convert(dir, out);
    expect(result.sourceFormat).toBe("hf-safetensors");
    expectSameTensors((await readAll(join(out, "model.safetensors"))).tensors, reference.tensors);
  });

  it("converts the demo model nano-clip.jit.pt", async () => {
    const out = freshOut();
    const result = await convert(join(repoRoot, "packages/cli/assets/demo/nano-clip.jit.pt"), out);
    expect(result.sourceFormat).toBe("torchscript");
    expect(result.config).toMatchObject({
      architecture: "vit",
      imageResolution: 32,
      visionPatchSize: 4,
      visionWidth: 128,
      visionLayers: 4,
      embedDim: 128,
      transformerWidth: 64,
      transformerLayers: 3,
      contextLength: 77,
      vocabSize: 49408,
    });
  });
});

describe("convert: other layouts of the same weights", () => {
  const archive = (name: string) => join(work, name);

  it("reads a TorchScript-style ZIP64 archive from the test writer", async () => {
    const path = archive("written.jit.pt");
    await writeTorchArchive(path, {
      layout: "torchscript",
      tensors: reference.tensors,
      zip64: true,
      archiveName: "ViT",
    });
    const out = freshOut();
    const result = await convert(path, out);
    expect(result.sourceFormat).toBe("torchscript");
    expectSameTensors((await readAll(join(out, "model.safetensors"))).tensors, reference.tensors);
  });

  it("unwraps {state_dict: ...} training checkpoints with module. prefixes and open_clip text. towers", async () => {
    const w = new PickleWriter().proto(2).emptyDict().mark();
    w.str("epoch").int(30).str("state_dict").emptyDict().mark();
    const storages: Record<string, Uint8Array> = {};
    for (const [i, t] of reference.tensors.entries()) {
      const textTower = /^(transformer\.|token_embedding|positional_embedding|ln_final|text_projection)/.test(
        t.name,
      );
      w.str(`module.${textTower ? "text." : ""}${t.name}`);
      writeTensor(w, { storageKey: String(i), dtype: t.dtype, shape: t.shape });
      storages[String(i)] = t.data;
    }
    w.str("module.input_resolution");
    writeTensor(w, { storageKey: "extra", dtype: "I64", shape: [] });
    storages.extra = new Uint8Array(8);
    w.setitems().setitems().stop();
    const path = archive("wrapped.pt");
    await writeRawTorchZip(path, w.bytes(), storages);
    const out = freshOut();
    await convert(path, out);
    expectSameTensors((await readAll(join(out, "model.safetensors"))).tensors, reference.tensors);
  });

  it("copies a tensor stored as a non-contiguous view into row-major order", async () => {
    // Store text_projection [64, 64] as the transpose view of a storage holding its transpose.
    const proj = reference.tensors.find((t) => t.name === "text_projection")!;
    const [rows, cols] = proj.shape;
    const src = new Uint16Array(proj.data.buffer, proj.data.byteOffset, rows * cols);
    const transposed = new Uint16Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) transposed[c * rows + r] = src[r * cols + c];
    const w = new PickleWriter().proto(2).emptyDict().mark();
    const storages: Record<string, Uint8Array> = {};
    for (const [i, t] of reference.tensors.entries()) {
      w.str(t.name);
      if (t.name === "text_projection") {
        writeTensor(w, { storageKey: String(i), dtype: t.dtype, shape: [rows, cols], stride: [1, rows] });
        storages[String(i)] = new Uint8Array(transposed.buffer);
      } else {
        writeTensor(w, { storageKey: String(i), dtype: t.dtype, shape: t.shape });
        storages[String(i)] = t.data;
      }
    }
    w.setitems().stop();
    const path = archive("strided.pt");
    await writeRawTorchZip(path, w.bytes(), storages);
    const out = freshOut();
    await convert(path, out);
    expectSameTensors((await readAll(join(out, "model.safetensors"))).tensors, reference.tensors);
  });

  it("reads OpenAI-named safetensors (open_clip's export) as they are", async () => {
    const dir = join(work, "openai-names");
    mkdirSync(dir);
    writeFileSync(join(dir, "model.safetensors"), encodeSafetensors(reference.tensors));
    const out = freshOut();
    const result = await convert(dir, out);
    expect(result.sourceFormat).toBe("safetensors");
    expectSameTensors((await readAll(join(out, "model.safetensors"))).tensors, reference.tensors);
  });

  it("refuses open_clip variants the canonical layout cannot hold", async () => {
    const dir = join(work, "layerscale");
    mkdirSync(dir);
    const gamma = {
      name: "visual.transformer.resblocks.0.ls_1.gamma",
      dtype: "F16" as DType,
      shape: [128],
      data: new Uint8Array(256),
    };
    writeFileSync(join(dir, "model.safetensors"), encodeSafetensors([...reference.tensors, gamma]));
    const out = freshOut();
    expect(await codeOf(() => convert(dir, out))).toBe("UNSUPPORTED_MODEL");
    expectNothingWritten(out);
  });
});

describe("convert: ResNet (RN50-family) checkpoints", () => {
  /** OpenAI's ModifiedResNet state dict at toy size: stem of 3 convs, one bottleneck per stage, attention pool. */
  function resnetTensors(): ArchiveTensor[] {
    const width = 8;
    const embed = width * 32; // the attention pool's width
    const tensors: [string, DType, number[]][] = [];
    const bn = (prefix: string, channels: number) => {
      for (const p of ["weight", "bias", "running_mean", "running_var"])
        tensors.push([`${prefix}.${p}`, "F16", [channels]]);
      tensors.push([`${prefix}.num_batches_tracked`, "I64", []]);
    };
    tensors.push(["visual.conv1.weight", "F16", [width / 2, 3, 3, 3]]);
    bn("visual.bn1", width / 2);
    tensors.push(["visual.conv2.weight", "F16", [width / 2, width / 2, 3, 3]]);
    bn("visual.bn2", width / 2);
    tensors.push(["visual.conv3.weight", "F16", [width, width / 2, 3, 3]]);
    bn("visual.bn3", width);
    let inplanes = width;
    for (let stage = 1; stage <= 4; stage++) {
      const planes = width * 2 ** (stage - 1);
      const p = `visual.layer${stage}.0`;
      tensors.push([`${p}.conv1.weight`, "F16", [planes, inplanes, 1, 1]]);
      bn(`${p}.bn1`, planes);
      tensors.push([`${p}.conv2.weight`, "F16", [planes, planes, 3, 3]]);
      bn(`${p}.bn2`, planes);
      tensors.push([`${p}.conv3.weight`, "F16", [planes * 4, planes, 1, 1]]);
      bn(`${p}.bn3`, planes * 4);
      tensors.push([`${p}.downsample.0.weight`, "F16", [planes * 4, inplanes, 1, 1]]);
      bn(`${p}.downsample.1`, planes * 4);
      inplanes = planes * 4;
    }
    tensors.push(["visual.attnpool.positional_embedding", "F16", [2 * 2 + 1, embed]]);
    for (const proj of ["q_proj", "k_proj", "v_proj"])
      tensors.push(
        [`visual.attnpool.${proj}.weight`, "F16", [embed, embed]],
        [`visual.attnpool.${proj}.bias`, "F16", [embed]],
      );
    tensors.push(
      ["visual.attnpool.c_proj.weight", "F16", [64, embed]],
      ["visual.attnpool.c_proj.bias", "F16", [64]],
    );
    for (const [name, shape] of vitTensorShapes(TINY_CONFIG as ClipConfig))
      if (!name.startsWith("visual.")) tensors.push([name, name === "logit_scale" ? "F32" : "F16", shape]);
    let seed = 3;
    return tensors.map(([name, dtype, shape]) => {
      const data = new Uint8Array(
        shape.reduce((a, b) => a * b, 1) * (dtype === "I64" ? 8 : dtype === "F32" ? 4 : 2),
      );
      for (let i = 0; i < data.length; i++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        data[i] = dtype === "F16" && i % 2 === 1 ? (seed >>> 24) & 0x3b : seed >>> 24;
      }
      if (dtype === "I64") data.fill(0).set([7]); // num_batches_tracked = 7
      return { name, dtype, shape, data };
    });
  }

  it("recognises the architecture and converts every tensor as is (no ONNX towers yet)", async () => {
    const tensors = resnetTensors();
    const path = join(work, "rn-toy.pt");
    await writeTorchArchive(path, { layout: "torchscript", tensors });
    const out = freshOut();
    const events: ConvertProgress[] = [];
    const result = await convertWithOnnx(path, out, { onProgress: (e) => events.push(e) });
    expect(result.config).toMatchObject({
      architecture: "resnet",
      visionLayers: [1, 1, 1, 1],
      visionWidth: 8,
      imageResolution: 64,
      embedDim: 64,
    });
    expect(events.some((e) => e.status === "onnx-skipped")).toBe(true);
    expect(existsSync(join(out, "vision.onnx"))).toBe(false);
    const converted = await readAll(join(out, "model.safetensors"));
    for (const t of tensors) {
      const got = converted.tensors.find((c) => c.name === t.name);
      expect(got, t.name).toBeDefined();
      if (t.dtype !== "F32")
        expect(Buffer.from(got!.data).equals(Buffer.from(t.data as Uint8Array)), t.name).toBe(true);
    }
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).architecture).toBe("resnet");
  });
});

describe("convert: model names, dtype and output handling", () => {
  it("knows the nine official releases by SHA-256", () => {
    expect(OFFICIAL_RELEASES).toHaveLength(9);
    expect(officialReleaseFor("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af")?.name).toBe(
      "ViT-B/32",
    );
    expect(officialReleaseFor("3035C92B350959924F9F00213499208652FC7EA050643E8B385C2DAC08641F02")?.name).toBe(
      "ViT-L/14@336px",
    );
    expect(
      officialReleaseFor("afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762")?.architecture,
    ).toBe("resnet");
    expect(officialReleaseFor("00".repeat(32))).toBeUndefined();
  });

  it("records a given model name for an unofficial file", async () => {
    const out = freshOut();
    const result = await convert(fixturePath(FORMATS["torch-zip"]), out, { modelName: "tiny-vit-p8" });
    expect(result).toMatchObject({ modelName: "tiny-vit-p8", official: false });
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).model_name).toBe("tiny-vit-p8");
  });

  it("reports progress: hashing, header, every tensor, done", async () => {
    const events: ConvertProgress[] = [];
    await convert(fixturePath(FORMATS["torch-zip"]), freshOut(), { onProgress: (e) => events.push(e) });
    expect(events.some((e) => e.status === "hashing")).toBe(true);
    expect(events.find((e) => e.status === "read-header")).toMatchObject({
      format: "torch-zip",
      tensorCount: 62,
    });
    const tensors = events.filter((e) => e.status === "tensor");
    expect(tensors).toHaveLength(62);
    const last = tensors[tensors.length - 1] as Extract<ConvertProgress, { status: "tensor" }>;
    expect(last.bytesDone).toBe(last.bytesTotal);
    expect(events[events.length - 1]).toMatchObject({ status: "done", modelName: null });
  });

  it("refuses a non-empty output directory unless overwrite is set", async () => {
    const out = freshOut();
    mkdirSync(out);
    writeFileSync(join(out, "keep.txt"), "mine");
    expect(await codeOf(() => convert(fixturePath(FORMATS["torch-zip"]), out))).toBe("OUTPUT_EXISTS");
    expect(readdirSync(out)).toEqual(["keep.txt"]);
    await convert(fixturePath(FORMATS["torch-zip"]), out, { overwrite: true });
    expect(readdirSync(out).sort()).toEqual(["config.json", "model.safetensors"]);
  });

  it("runs after-weights steps inside the atomic output, and a failing step leaves nothing", async () => {
    const out = freshOut();
    const result = await convert(fixturePath(FORMATS["torch-zip"]), out, {
      afterWeights: [
        {
          name: "extra-file",
          run: async (context) => {
            expect(existsSync(context.weightsPath)).toBe(true);
            expect(context.tensors).toHaveLength(62);
            writeFileSync(join(context.dir, "extra.txt"), "made by a step");
          },
        },
      ],
    });
    expect(result.files).toEqual(["config.json", "extra.txt", "model.safetensors"]);
    const failing = freshOut();
    const step = { name: "boom", run: async () => Promise.reject(new Error("step failed")) };
    await expect(
      convert(fixturePath(FORMATS["torch-zip"]), failing, { afterWeights: [step] }),
    ).rejects.toThrow("step failed");
    expectNothingWritten(failing);
  });

  it("stops on abort and leaves nothing", async () => {
    const controller = new AbortController();
    const out = freshOut();
    const run = convert(fixturePath(FORMATS.torchscript), out, {
      signal: controller.signal,
      onProgress: (e) => {
        if (e.status === "tensor" && e.index === 3) controller.abort();
      },
    });
    expect(await codeOf(() => run)).toBe("ABORTED");
    expectNothingWritten(out);
  });
});

describe("convert: hostile input is refused with a typed error and nothing written", () => {
  const evilPickle = (module: string, name: string) =>
    new PickleWriter()
      .proto(2)
      .global(module, name)
      .str("touch /tmp/pwned")
      .raw(0x85)
      .reduce()
      .stop()
      .bytes();

  it.each([
    ["os", "system"],
    ["builtins", "eval"],
  ])("a pickle calling %s.%s: PICKLE_UNSAFE_GLOBAL", async (module, name) => {
    const path = join(work, `evil-${name}.pt`);
    await writeRawTorchZip(path, evilPickle(module, name));
    const out = freshOut();
    expect(await codeOf(() => convert(path, out))).toBe("PICKLE_UNSAFE_GLOBAL");
    expectNothingWritten(out);
  });

  it.each([
    ["INST", Uint8Array.of(0x80, 2, 0x69, ...new TextEncoder().encode("os\nsystem\n"), 0x2e)],
    ["OBJ", Uint8Array.of(0x80, 2, 0x28, 0x6f, 0x2e)],
  ])("a pickle with %s: PICKLE_FORBIDDEN_OPCODE", async (name, bytes) => {
    const path = join(work, `evil-${name}.pt`);
    await writeRawTorchZip(path, bytes);
    const out = freshOut();
    expect(await codeOf(() => convert(path, out))).toBe("PICKLE_FORBIDDEN_OPCODE");
    expectNothingWritten(out);
  });

  it("a legacy file with a malicious object pickle: PICKLE_UNSAFE_GLOBAL", async () => {
    const legacy = readFileSync(fixturePath(FORMATS["torch-legacy"]));
    const objectStart = 137; // after the magic, protocol and sys_info pickles
    const path = join(work, "evil-legacy.pt");
    writeFileSync(path, Buffer.concat([legacy.subarray(0, objectStart), evilPickle("os", "system")]));
    const out = freshOut();
    expect(await codeOf(() => convert(path, out))).toBe("PICKLE_UNSAFE_GLOBAL");
    expectNothingWritten(out);
  });

  it("a truncated zip: ZIP_TRUNCATED", async () => {
    const bytes = readFileSync(fixturePath(FORMATS.torchscript));
    for (const fraction of [0.5, 0.99]) {
      const path = join(work, `truncated-${fraction}.pt`);
      writeFileSync(path, bytes.subarray(0, Math.floor(bytes.byteLength * fraction)));
      const out = freshOut();
      expect(await codeOf(() => convert(path, out))).toBe("ZIP_TRUNCATED");
      expectNothingWritten(out);
    }
  });

  it("a truncated legacy file: TORCH_STORAGE_SIZE", async () => {
    const bytes = readFileSync(fixturePath(FORMATS["torch-legacy"]));
    const path = join(work, "truncated-legacy.pt");
    writeFileSync(path, bytes.subarray(0, bytes.byteLength - 1000));
    const out = freshOut();
    expect(await codeOf(() => convert(path, out))).toBe("TORCH_STORAGE_SIZE");
    expectNothingWritten(out);
  });

  it("a zip whose storage is shorter than its tensor: TORCH_STORAGE_SIZE", async () => {
    const w = new PickleWriter().proto(2).emptyDict().mark();
    const storages: Record<string, Uint8Array> = {};
    for (const [i, t] of reference.tensors.entries()) {
      w.str(t.name);
      writeTensor(w, { storageKey: String(i), dtype: t.dtype, shape: t.shape });
      storages[String(i)] = t.name === "visual.proj" ? t.data.subarray(0, t.data.byteLength - 2) : t.data;
    }
    const path = join(work, "short-storage.pt");
    await writeRawTorchZip(path, w.setitems().stop().bytes(), storages);
    const out = freshOut();
    expect(await codeOf(() => convert(path, out))).toBe("TORCH_STORAGE_SIZE");
    expectNothingWritten(out);
  });

  it("a storage record missing from the zip: TORCH_STORAGE_MISSING", async () => {
    const w = new PickleWriter().proto(2).emptyDict().mark().str("logit_scale");
    writeTensor(w, { storageKey: "7", dtype: "F16", shape: [] });
    const path = join(work, "missing-storage.pt");
    await writeRawTorchZip(path, w.setitems().stop().bytes());
    const out = freshOut();
    expect(await codeOf(() => convert(path, out))).toBe("TORCH_STORAGE_MISSING");
    expectNothingWritten(out);
  });

  it("many tensors aliasing one storage (an amplification): TORCH_BAD_TENSOR", async () => {
    const w = new PickleWriter().proto(2).emptyDict().mark();
    const big = reference.tensors.find((t) => t.name === "token_embedding.weight")!;
    for (const t of reference.tensors) {
      w.str(t.name);
      // every tensor is a [49408, 64] view of the one storage
      writeTensor(w, { storageKey: "0", dtype: "F16", shape: t.name === "logit_scale" ? [] : big.shape });
    }
    const path = join(work, "alias.pt");
    await writeRawTorchZip(path, w.setitems().stop().bytes(), { 0: big.data });
    const out = freshOut();
    expect(await codeOf(() => convert(path, out))).toBe("TORCH_BAD_TENSOR");
    expectNothingWritten(out);
  });

  it("a safetensors file with overlapping offsets: SAFETENSORS_BAD_OFFSETS", async () => {
    const header = JSON.stringify({
      "visual.proj": { dtype: "F16", shape: [4], data_offsets: [0, 8] },
      text_projection: { dtype: "F16", shape: [4], data_offsets: [4, 12] },
    });
    const headerBytes = Buffer.from(header);
    const file = Buffer.alloc(8 + headerBytes.byteLength + 12);
    file.writeBigUInt64LE(BigInt(headerBytes.byteLength));
    headerBytes.copy(file, 8);
    const dir = join(work, "overlap");
    mkdirSync(dir);
    writeFileSync(join(dir, "model.safetensors"), file);
    const out = freshOut();
    expect(await codeOf(() => convert(dir, out))).toBe("SAFETENSORS_BAD_OFFSETS");
    expectNothingWritten(out);
  });

  it("a file of no known format: UNKNOWN_FORMAT", async () => {
    const path = join(work, "noise.bin");
    writeFileSync(path, Buffer.from("this is not a checkpoint at all, just text"));
    const out = freshOut();
    expect(await codeOf(() => convert(path, out))).toBe("UNKNOWN_FORMAT");
    expectNothingWritten(out);
  });

  it("streams tensors larger than its 8 MiB buffers unchanged, and refuses one that fails its CRC", async () => {
    // A text width of 192 makes the token embedding 49,408 x 192 fp16 = 19 MB: it is read and
    // written in pieces, with the zip CRC checked on the last piece.
    const config = { ...TINY_CONFIG, transformerWidth: 192, transformerHeads: 3 } as ClipConfig;
    let seed = 7;
    const tensors = [...vitTensorShapes(config)].map(([name, shape]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = new Uint8Array(n * 2);
      for (let i = 0; i < data.length; i++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        data[i] = seed >>> 24;
      }
      for (let i = 1; i < data.length; i += 2) data[i] &= 0x3b; // finite fp16 values
      return { name, dtype: "F16" as DType, shape, data };
    });
    const big = tensors.find((t) => t.name === "token_embedding.weight")!;
    expect(big.data.byteLength).toBeGreaterThan(8 * 1024 * 1024);
    const path = join(work, "big.pt");
    await writeTorchArchive(path, { layout: "torchscript", tensors });
    const out = freshOut();
    await convert(path, out);
    const converted = await readAll(join(out, "model.safetensors"));
    for (const t of tensors) {
      const got = converted.tensors.find((c) => c.name === t.name)!;
      expect(Buffer.from(got.data).equals(Buffer.from(t.data)), t.name).toBe(true);
    }
    // Corrupt one byte in the middle of the big tensor's storage: the CRC check fails, nothing is written.
    const bytes = readFileSync(path);
    const at = bytes.indexOf(Buffer.from(big.data.subarray(0, 64)));
    expect(at).toBeGreaterThan(0);
    bytes[at + 10_000_000] ^= 0x01;
    const corrupt = join(work, "big-corrupt.pt");
    writeFileSync(corrupt, bytes);
    const out2 = freshOut();
    expect(await codeOf(() => convert(corrupt, out2))).toBe("ZIP_CRC_MISMATCH");
    expectNothingWritten(out2);
  });

  it("a path that does not exist: FILE_NOT_FOUND, naming it", async () => {
    const path = join(work, "no-such-checkpoint.pt");
    const out = freshOut();
    const error = await convert(path, out).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "FILE_NOT_FOUND", message: expect.stringContaining(path) });
    expectNothingWritten(out);
  });

  it("an HF checkpoint without config.json: UNKNOWN_FORMAT", async () => {
    const dir = join(work, "hf-no-config");
    mkdirSync(dir);
    await copyFile(fixturePath(FORMATS["hf-safetensors"]), join(dir, "model.safetensors"));
    const out = freshOut();
    expect(await codeOf(() => convert(dir, out))).toBe("UNKNOWN_FORMAT");
    expectNothingWritten(out);
  });
});
