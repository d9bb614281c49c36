import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeSafetensors, isUnmaskError, SafetensorsFile } from "@unmask/clip";
import { fixturePath } from "@unmask/fixtures";
import { decodeMask, fingerprintTensors, unpackBits } from "@unmask/mask-format";
import { beforeAll, describe, expect, it } from "vitest";
import { canonicalNameForMaskKey, importMaskToFile, readOfficialMasks } from "./import-mask.js";
import { PickleWriter, writeRawTorchZip } from "./testing/torch-writer.js";

const work = mkdtempSync(join(tmpdir(), "unmask-import-mask-"));
const checkpoint = () => fixturePath("official-rmt/model.pth.tar-30");

/** expected-masks.safetensors: the masks unpacked (U8, 1 = keep) under canonical names. */
let expected: { name: string; shape: number[]; values: Uint8Array }[];
let officialKeyFor: Record<string, string>;

beforeAll(async () => {
  const file = await SafetensorsFile.open(fixturePath("official-rmt/expected-masks.safetensors"));
  try {
    expected = [];
    for (const entry of file.tensors.values())
      expected.push({ name: entry.name, shape: entry.shape, values: await file.readBytes(entry.name) });
    officialKeyFor = JSON.parse(file.metadata.official_key_for);
  } finally {
    await file.close();
  }
});

describe("import-mask", () => {
  it("maps official R-AMT keys to canonical weight names", () => {
    for (const [canonical, official] of Object.entries(officialKeyFor))
      expect(canonicalNameForMaskKey(official)).toBe(canonical);
    expect(canonicalNameForMaskKey("module.image_encoder.transformer.resblocks.3.mlp.c_fc.mask_real")).toBe(
      "visual.transformer.resblocks.3.mlp.c_fc.weight",
    );
  });

  it("reads the official checkpoint's packed masks with the safe reader", async () => {
    const { entries, epoch } = await readOfficialMasks(checkpoint());
    expect(epoch).toBe(30);
    expect(entries.map((e) => e.name)).toEqual(Object.keys(officialKeyFor));
    expect(entries.every((e) => e.packed)).toBe(true);
  });

  it("writes a .umask that matches expected-masks.safetensors bit for bit (explicit shapes)", async () => {
    const shapes = new Map(expected.map((t) => [t.name, t.shape]));
    const fingerprint = "ab".repeat(32);
    const out = join(work, "explicit.umask");
    const result = await importMaskToFile(checkpoint(), out, {
      shapes,
      baseModel: { name: "micro-clip", fingerprint },
    });
    expect(result.parameters).toBe(893_952);
    expect(result.zeros / result.parameters).toBeCloseTo(0.0312, 3);
    const decoded = decodeMask(new Uint8Array(readFileSync(out)));
    expect(decoded.baseModel).toEqual({ name: "micro-clip", fingerprint });
    expect(decoded.recipe).toMatchObject({ source: "R-AMT checkpoint", epoch: 30 });
    expect([...decoded.tensorNames].sort()).toEqual(expected.map((t) => t.name).sort());
    for (const t of expected) {
      const tensor = decoded.tensor(t.name);
      expect(tensor.shape).toEqual(t.shape);
      const values = unpackBits(tensor.bits(), tensor.numel);
      expect(Buffer.compare(Buffer.from(values), Buffer.from(t.values)), t.name).toBe(0);
    }
  });

  it("takes shapes, fingerprint and name from a model directory", async () => {
    // A stand-in model directory holding the masked tensors (the fixture's model, micro-clip, is
    // not in the repository): seeded values with the right shapes, and a model name in the metadata.
    const dir = join(work, "model-dir");
    mkdirSync(dir);
    let seed = 7;
    const tensors = expected.map((t) => {
      const values = new Float32Array(t.values.length).map(() => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return (seed / 2 ** 32 - 0.5) * 0.1;
      });
      return {
        name: t.name,
        dtype: "F32" as const,
        shape: t.shape,
        data: new Uint8Array(values.buffer),
        values,
      };
    });
    writeFileSync(join(dir, "model.safetensors"), encodeSafetensors(tensors, { model_name: "micro-clip" }));
    const out = join(work, "from-dir.umask");
    await importMaskToFile(checkpoint(), out, { modelDir: dir });
    const decoded = decodeMask(new Uint8Array(readFileSync(out)));
    const order = decoded.tensorNames.map((n) => tensors.find((t) => t.name === n)!);
    const fingerprint = await fingerprintTensors(
      order.map((t) => ({ name: t.name, shape: t.shape, values: t.values })),
    );
    expect(decoded.baseModel).toEqual({ name: "micro-clip", fingerprint });
  });

  it("refuses a mask whose size does not fit the model, and checkpoints without masks", async () => {
    const shapes = new Map(
      expected.map((t) => [t.name, t.name === "visual.conv1.weight" ? [192, 3, 8, 8] : t.shape]),
    );
    const code = async (run: () => Promise<unknown>) => {
      try {
        await run();
      } catch (error) {
        return isUnmaskError(error) ? error.code : String(error);
      }
      return undefined;
    };
    const baseModel = { name: null, fingerprint: "00".repeat(32) };
    expect(
      await code(() => importMaskToFile(checkpoint(), join(work, "bad.umask"), { shapes, baseModel })),
    ).toBe("MASK_MISMATCH");
    const empty = join(work, "empty.pt");
    await writeRawTorchZip(
      empty,
      new PickleWriter().proto(2).emptyDict().mark().str("state_dict").emptyDict().setitems().stop().bytes(),
    );
    expect(await code(() => importMaskToFile(empty, join(work, "empty.umask"), { shapes, baseModel }))).toBe(
      "MASK_MISMATCH",
    );
  });

  it("refuses a malicious checkpoint like any other (PICKLE_UNSAFE_GLOBAL)", async () => {
    const evil = join(work, "evil.pth.tar");
    await writeRawTorchZip(
      evil,
      new PickleWriter().proto(2).global("os", "system").str("id").raw(0x85).reduce().stop().bytes(),
    );
    await expect(
      importMaskToFile(evil, join(work, "evil.umask"), {
        shapes: new Map(),
        baseModel: { name: null, fingerprint: "00".repeat(32) },
      }),
    ).rejects.toMatchObject({ code: "PICKLE_UNSAFE_GLOBAL" });
  });
});
