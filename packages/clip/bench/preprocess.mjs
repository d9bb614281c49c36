// Image preprocessing: parity with OpenAI's reference tensors and throughput (run after `pnpm build`).
// Usage: node bench/preprocess.mjs   (from packages/clip)
import { performance } from "node:perf_hooks";
import { fixturePath } from "@unmask/fixtures";
import sharp from "sharp";
import {
  centerCrop,
  decodeImage,
  normalizePixels,
  preprocessImage,
  preprocessImages,
  resizeAndCropDecoded,
  resizedShortSideSize,
  SafetensorsFile,
} from "../dist/index.js";

const PHOTOS = [
  "n01440764_tench.JPEG",
  "n02123045_tabby.JPEG",
  "n03000134_chainlink_fence.JPEG",
  "n04285008_sports_car.JPEG",
];
const R = 224;

function absDiff(a, b) {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    sum += d;
  }
  return `max ${max.toExponential(3)}  mean ${(sum / a.length).toExponential(3)}`;
}

/** The same transform with sharp's own bicubic resize instead of our Pillow port (for comparison). */
async function viaSharpResize(path) {
  const decoded = await decodeImage(path);
  const [w, h] = resizedShortSideSize(decoded.width, decoded.height, R);
  const { data } = await sharp(decoded.data, {
    raw: { width: decoded.width, height: decoded.height, channels: decoded.channels },
  })
    .resize(w, h, { kernel: "cubic", fit: "fill" })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return normalizePixels(centerCrop({ width: w, height: h, channels: 3, data: new Uint8Array(data) }, R));
}

const file = await SafetensorsFile.open(fixturePath("text-image/preprocess.safetensors"));
console.log("parity with OpenAI preprocess (normalised units), per image:");
for (const name of PHOTOS) {
  const path = fixturePath(`text-image/${name}`);
  const want = await file.readFloat32(`${name}.224`);
  const ours = await preprocessImage(path, R);
  const sharpResized = await viaSharpResize(path);
  console.log(
    `  ${name.padEnd(32)} ours: ${absDiff(ours, want)}   sharp cubic resize: ${absDiff(sharpResized, want)}`,
  );
}
await file.close();

const paths = PHOTOS.map((name) => fixturePath(`text-image/${name}`));
const batch = Array.from({ length: 64 }, (_, i) => paths[i % paths.length]);
await preprocessImages(batch.slice(0, 8), R); // warm-up
let t0 = performance.now();
await preprocessImages(batch, R, { concurrency: 4 });
let s = (performance.now() - t0) / 1000;
console.log(
  `preprocessImages (decode + resize + crop + normalise, ~500x375 JPEGs): ${(batch.length / s).toFixed(1)} images/s`,
);

const decoded = await Promise.all(paths.map((p) => decodeImage(p)));
t0 = performance.now();
const rounds = 50;
for (let i = 0; i < rounds; i++) for (const d of decoded) normalizePixels(resizeAndCropDecoded(d, R));
s = (performance.now() - t0) / 1000;
console.log(
  `resize + crop + normalise only (Pillow bicubic port): ${((rounds * decoded.length) / s).toFixed(1)} images/s`,
);
