#!/usr/bin/env node
// Decodes the Fashion-MNIST few-shot lists and the 10,000 test images (sharp, as the trainer's
// image folder does) into one uint8 file for the device machine, which has no sharp:
//   <out> = u32 header length, JSON header {classNames, test: labels[], lists: {seed: {labels[]}}},
//           then grey 28x28 pixels: the test images, then each list's images in list order.
// Usage: node bench/device/prep-fashion.mjs [/work/shared/data/fashion-mnist] [out.bin]
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";

const root = process.argv[2] ?? "/work/shared/data/fashion-mnist";
const outPath = process.argv[3] ?? "fashion.bin";
const classNames = readdirSync(join(root, "test")).sort();
const chunks = [];
const decode = async (file) => {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== 28 || info.height !== 28)
    throw new Error(`${file}: ${JSON.stringify(info)}`);
  // grey photos stored as RGB: keep one channel (the device rebuilds RGB by replication)
  const grey = Buffer.alloc(28 * 28);
  for (let i = 0; i < grey.length; i++) {
    if (data[3 * i] !== data[3 * i + 1] || data[3 * i] !== data[3 * i + 2])
      throw new Error(`${file}: not grey`);
    grey[i] = data[3 * i];
  }
  chunks.push(grey);
};
const test = [];
for (let c = 0; c < classNames.length; c++)
  for (const f of readdirSync(join(root, "test", classNames[c])).sort()) {
    await decode(join(root, "test", classNames[c], f));
    test.push(c);
  }
const lists = {};
for (const seed of [1, 2, 3]) {
  const list = JSON.parse(readFileSync(join(root, `fewshot-16-seed${seed}.json`), "utf8"));
  const labels = [];
  for (const rel of list.train) {
    labels.push(classNames.indexOf(rel.split("/")[1]));
    await decode(join(root, rel));
  }
  lists[seed] = labels;
}
const header = Buffer.from(JSON.stringify({ classNames, width: 28, height: 28, test, lists }));
const len = Buffer.alloc(4);
len.writeUInt32LE(header.length);
writeFileSync(outPath, Buffer.concat([len, header, ...chunks]));
console.log(
  `prep-fashion: ${test.length} test + ${Object.values(lists).flat().length} train images -> ${outPath}`,
);
