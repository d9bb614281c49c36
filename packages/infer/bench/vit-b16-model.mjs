// A random-weight model directory with exactly ViT-B/16's shapes (fp16, as OpenAI ships it; vision
// tower only), written by @unmask/convert's bench helper, plus masks over the published R-AMT
// tensor set. Bench-only: @unmask/convert is a devDependency.
import { defaultMaskedTensors } from "@unmask/clip";
import { VIT_B16_CONFIG as config, writeRandomVitB16ModelDir } from "@unmask/convert/testing";
import { encodeMask, fingerprintTensors } from "@unmask/mask-format";

export { config };

let seed = 12345;
function random() {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 4294967296;
}

export async function makeVitB16Dir(dir) {
  await writeRandomVitB16ModelDir({ modelDir: dir });
}

/** A mask over the default R-AMT set (patch embedding + attention in/out of every block), ~3% zeros. */
export async function makeMaskBytes(file, maskSeed) {
  const names = defaultMaskedTensors(config);
  let s = maskSeed >>> 0;
  const rnd = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const tensors = [];
  const fp = [];
  for (const name of names) {
    const entry = file.entry(name);
    const numel = entry.shape.reduce((a, b) => a * b, 1);
    const bits = new Uint8Array(Math.ceil(numel / 8)).fill(0xff);
    for (let k = 0; k < numel; k++) if (rnd() < 0.03) bits[k >> 3] &= ~(0x80 >> (k & 7));
    tensors.push({ name, shape: entry.shape, bits });
    fp.push({ name, shape: entry.shape, values: await file.readFloat32(name) });
  }
  const classNames = Array.from({ length: 10 }, (_, i) => `class${i}`);
  const textFeatures = new Float32Array(10 * 512).map(() => random() - 0.5);
  return encodeMask({
    baseModel: { name: "random-ViT-B/16", fingerprint: await fingerprintTensors(fp) },
    tensors,
    head: { classNames, template: "a photo of a {}.", textFeatures },
  });
}
