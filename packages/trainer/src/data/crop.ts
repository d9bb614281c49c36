/**
 * Random resized crop parameters, torchvision's `RandomResizedCrop.get_params` rule, drawn from
 * our seeded stream:
 *
 *   up to 10 attempts: area = W*H * U(scale), ratio = exp(U(log 3/4, log 4/3)),
 *     w = round(sqrt(area*ratio)), h = round(sqrt(area/ratio)) (half to even, as Python);
 *     accept when 0 < w <= W and 0 < h <= H, then top = randint(0, H-h), left = randint(0, W-w)
 *   otherwise a center crop clamped to the ratio range.
 *
 * The box is computed on the ORIGINAL image size (so a crop of a 640x480 photo has the aspect ratio
 * it would have in PyTorch) and returned in normalised [0,1] coordinates; the engine samples it from
 * the cached, fixed-size copy of the image (engine.ts CropBatch).
 */
import type { SeededRandom } from "./random.js";

export const CROP_SCALE: readonly [number, number] = [0.5, 1];
export const CROP_RATIO: readonly [number, number] = [3 / 4, 4 / 3];
const CROP_ATTEMPTS = 10;

export interface CropBox {
  /** Pixel box in the original image. */
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function randomResizedCropBox(
  rng: SeededRandom,
  width: number,
  height: number,
  scale: readonly [number, number] = CROP_SCALE,
  ratio: readonly [number, number] = CROP_RATIO,
): CropBox {
  const area = width * height;
  const logLow = Math.log(ratio[0]);
  const logHigh = Math.log(ratio[1]);
  for (let attempt = 0; attempt < CROP_ATTEMPTS; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLow, logHigh));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.nextInt(height - h + 1);
      const left = rng.nextInt(width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(...ratio)) h = roundHalfEven(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = roundHalfEven(h * Math.max(...ratio));
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}
