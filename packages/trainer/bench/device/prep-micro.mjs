#!/usr/bin/env node
// Shrinks a converted model directory for the device machine's size-limited upload: every row of
// the text token embedding that the class prompts never read is set to zero (the prompts' token
// ids are recorded by running @unmask/clip's buildClassTextFeatures with a recording encoder, so
// the set is exactly what train() will read). Text features, zero-shot and masked accuracy are
// unchanged; the file then compresses to about the size of its vision tower.
// Usage: node bench/device/prep-micro.mjs <modelDir> <fashion.bin> <outDir>
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildClassTextFeatures, DEFAULT_TEMPLATE, encodeSafetensors, parseSafetensors } from "@unmask/clip";

const [modelDir, dataPath, outDir] = process.argv.slice(2);
const bytes = readFileSync(dataPath);
const header = JSON.parse(bytes.subarray(4, 4 + bytes.readUInt32LE(0)).toString("utf8"));
const config = JSON.parse(readFileSync(join(modelDir, "config.json"), "utf8"));
const used = new Set();
await buildClassTextFeatures({
  classNames: header.classNames,
  templates: [DEFAULT_TEMPLATE],
  contextLength: config.context_length,
  encodeText: async (tokens, count) => {
    for (const id of tokens) used.add(id);
    return new Float32Array(count * config.embed_dim);
  },
});
const file = parseSafetensors(new Uint8Array(readFileSync(join(modelDir, "model.safetensors"))));
const tensors = [];
for (const [name, e] of file.tensors) {
  const data = file.bytes.slice(e.fileOffset, e.fileOffset + e.byteLength);
  if (name === "token_embedding.weight") {
    const rowBytes = data.length / e.shape[0];
    for (let r = 0; r < e.shape[0]; r++) if (!used.has(r)) data.fill(0, r * rowBytes, (r + 1) * rowBytes);
  }
  tensors.push({ name, dtype: e.dtype, shape: e.shape, data });
}
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, "model.safetensors"), encodeSafetensors(tensors));
writeFileSync(join(outDir, "config.json"), readFileSync(join(modelDir, "config.json")));
console.log(`prep-micro: ${used.size} token rows kept of ${config.vocab_size}; wrote ${outDir}`);
