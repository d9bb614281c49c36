/**
 * Test helper: a canonical model directory (model.safetensors with OpenAI names + config.json)
 * made from the tiny-vit-p8 fixture's Hugging Face copy, through clip's mapping plan.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  configToJson,
  DTYPE_BYTES,
  inferConfig,
  planFromHf,
  SafetensorsFile,
  writeSafetensors,
} from "@unmask/clip";
import { fixturePath } from "@unmask/fixtures";

export async function makeTinyModelDir(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const hf = await SafetensorsFile.open(fixturePath("tiny-vit-p8/hf/model.safetensors"));
  try {
    const plan = planFromHf(hf.tensors.keys());
    const tensors = [];
    for (const [name, p] of plan) {
      if (p.op === "copy") {
        const e = hf.entry(p.from);
        tensors.push({ name, dtype: e.dtype, shape: e.shape, data: await hf.readBytes(p.from) });
      } else if (p.op === "concat-rows") {
        const parts = await Promise.all(p.from.map((f) => hf.readBytes(f)));
        const first = hf.entry(p.from[0]);
        const data = new Uint8Array(parts.reduce((a, b) => a + b.length, 0));
        let at = 0;
        for (const part of parts) {
          data.set(part, at);
          at += part.length;
        }
        const shape = [first.shape[0] * parts.length, ...first.shape.slice(1)];
        tensors.push({ name, dtype: first.dtype, shape, data });
      } else {
        const e = hf.entry(p.from);
        const src = await hf.readBytes(p.from);
        const [rows, cols] = e.shape;
        const size = DTYPE_BYTES[e.dtype];
        const data = new Uint8Array(src.length);
        for (let r = 0; r < rows; r++)
          for (let c = 0; c < cols; c++)
            data.set(src.subarray((r * cols + c) * size, (r * cols + c + 1) * size), (c * rows + r) * size);
        tensors.push({ name, dtype: e.dtype, shape: [cols, rows], data });
      }
    }
    const config = inferConfig(new Map(tensors.map((t) => [t.name, t.shape])));
    await writeSafetensors(join(dir, "model.safetensors"), tensors);
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify(configToJson(config, { modelName: "tiny-vit-p8", dtype: "F16", sourceSha256: null })),
    );
    return dir;
  } finally {
    await hf.close();
  }
}
