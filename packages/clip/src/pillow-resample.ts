/**
 * Pillow's `Image.resize` for 8-bit images, reproduced bit for bit (python-pillow/Pillow
 * src/libImaging/Resample.c `ImagingResample`, Geometry.c `ImagingScaleAffine`, and the RGBA/LA
 * premultiplication of `Image.resize`). OpenAI's CLIP preprocessing resizes with it, so matching
 * it is what keeps our pixels equal to the reference's.
 *
 * Convolution filters run as two separable passes, horizontal then vertical, each with:
 *  - support = filter support x max(1, inSize/outSize) (antialiasing when downscaling);
 *  - per output pixel, the window [trunc(center - support + 0.5), trunc(center + support + 0.5))
 *    clamped to the image, weights filter((x + xmin - center + 0.5) / filterscale) normalised
 *    to sum 1;
 *  - weights in fixed point with PRECISION_BITS = 32 - 8 - 2 = 22 fractional bits, rounded half
 *    away from zero; sums start at 1 << 21 (rounding) and are clipped to 0..255 after >> 22.
 * The horizontal pass only computes the rows the vertical pass reads. Pure (no Node APIs).
 */
import { UnmaskError } from "@unmask/mask-format";

/** Pixels, row-major, channels interleaved (HWC), 8 bits each. */
export interface PixelImage {
  width: number;
  height: number;
  /** 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA. */
  channels: number;
  data: Uint8Array;
}

/** RGB pixels, HWC uint8. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export type ResampleFilter = "nearest" | "box" | "bilinear" | "hamming" | "bicubic" | "lanczos";

/** 8 result bits + 2 bits of headroom for negative lobes and overshoot, in a 32-bit int. */
const PRECISION_BITS = 32 - 8 - 2;
const FIXED_ONE = 2 ** PRECISION_BITS;
const FIXED_HALF = 2 ** (PRECISION_BITS - 1);
/** Largest output side we accept; far above any model resolution, it bounds coefficient buffers. */
export const MAX_RESIZE_SIDE = 1 << 16;

interface Filter {
  weight: (x: number) => number;
  support: number;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

const FILTERS: Record<Exclude<ResampleFilter, "nearest">, Filter> = {
  box: { weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0), support: 0.5 },
  bilinear: {
    weight: (x) => {
      const ax = Math.abs(x);
      return ax < 1 ? 1 - ax : 0;
    },
    support: 1,
  },
  hamming: {
    weight: (x) => {
      const ax = Math.abs(x);
      if (ax === 0) return 1;
      if (ax >= 1) return 0;
      const px = ax * Math.PI;
      // Pillow writes 0.54f + 0.46f * cos(x): float constants promoted to double.
      return (Math.sin(px) / px) * (Math.fround(0.54) + Math.fround(0.46) * Math.cos(px));
    },
    support: 1,
  },
  // Keys' cubic with a = -0.5 (Pillow), not torch's -0.75.
  bicubic: {
    weight: (x) => {
      const a = -0.5;
      const ax = Math.abs(x);
      if (ax < 1) return ((a + 2) * ax - (a + 3)) * ax * ax + 1;
      if (ax < 2) return (((ax - 5) * ax + 8) * ax - 4) * a;
      return 0;
    },
    support: 2,
  },
  lanczos: { weight: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0), support: 3 },
};

interface Coefficients {
  /** Taps per output pixel (buffer stride). */
  ksize: number;
  /** Per output pixel: first input index, tap count. */
  bounds: Int32Array;
  /** Fixed-point weights, `ksize` per output pixel. */
  weights: Int32Array;
}

/** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for a box [0, inSize). */
function precomputeCoefficients(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const taps = new Float64Array(ksize);
  const invScale = 1 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero; the clamps follow.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let sum = 0;
    for (let x = 0; x < count; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * invScale);
      taps[x] = w;
      sum += w;
    }
    for (let x = 0; x < count; x++) {
      const w = sum !== 0 ? taps[x] / sum : taps[x];
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * FIXED_ONE) : Math.trunc(0.5 + w * FIXED_ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { ksize, bounds, weights };
}

/**
 * `clip8`: >> PRECISION_BITS, clamped to a byte. Sums fit in int32 (Pillow accumulates in int:
 * |weights| sum to under 2 after normalisation, x 255 x 2^22 < 2^31), so `>>` is an exact floor.
 */
function clip8(sum: number): number {
  const v = sum >> PRECISION_BITS;
  // biome-ignore lint/complexity/useMathMinMax: hot loop; the branches are what Pillow's lookup table does
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over rows [rowStart, rowStart + rows) of `src`. */
function resampleHorizontal(
  src: PixelImage,
  outWidth: number,
  rowStart: number,
  rows: number,
  c: Coefficients,
): Uint8Array {
  const { channels, width } = src;
  const input = src.data;
  const out = new Uint8Array(outWidth * rows * channels);
  const { ksize, bounds, weights } = c;
  for (let y = 0; y < rows; y++) {
    const inRow = (y + rowStart) * width * channels;
    let o = y * outWidth * channels;
    for (let xx = 0; xx < outWidth; xx++) {
      const xmin = bounds[xx * 2];
      const count = bounds[xx * 2 + 1];
      const k = xx * ksize;
      if (channels === 3) {
        // The common case, unrolled over channels: one pass over the taps.
        let s0 = FIXED_HALF;
        let s1 = FIXED_HALF;
        let s2 = FIXED_HALF;
        let p = inRow + xmin * 3;
        for (let x = 0; x < count; x++, p += 3) {
          const w = weights[k + x];
          s0 += input[p] * w;
          s1 += input[p + 1] * w;
          s2 += input[p + 2] * w;
        }
        out[o++] = clip8(s0);
        out[o++] = clip8(s1);
        out[o++] = clip8(s2);
        continue;
      }
      for (let ch = 0; ch < channels; ch++) {
        let sum = FIXED_HALF;
        let p = inRow + xmin * channels + ch;
        for (let x = 0; x < count; x++, p += channels) sum += input[p] * weights[k + x];
        out[o++] = clip8(sum);
      }
    }
  }
  return out;
}

/**
 * Vertical pass; `bounds` are relative to the first row of `src`. Accumulates whole rows (tap by
 * tap) so memory is read contiguously; the sums are integers below 2^31, exact in float64.
 */
function resampleVertical(src: PixelImage, outHeight: number, c: Coefficients): Uint8Array {
  const { channels, width } = src;
  const input = src.data;
  const rowStride = width * channels;
  const out = new Uint8Array(rowStride * outHeight);
  const sums = new Float64Array(rowStride);
  const { ksize, bounds, weights } = c;
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = bounds[yy * 2];
    const count = bounds[yy * 2 + 1];
    const k = yy * ksize;
    sums.fill(FIXED_HALF);
    for (let y = 0; y < count; y++) {
      const w = weights[k + y];
      const row = (ymin + y) * rowStride;
      for (let i = 0; i < rowStride; i++) sums[i] += input[row + i] * w;
    }
    const outRow = yy * rowStride;
    for (let i = 0; i < rowStride; i++) out[outRow + i] = clip8(sums[i]);
  }
  return out;
}

/** Pillow's nearest-neighbour scale (`ImagingScaleAffine`): source = trunc((i + 0.5) * scale), accumulated. */
function resizeNearest(src: PixelImage, outWidth: number, outHeight: number): PixelImage {
  const { channels, width, height } = src;
  const xScale = width / outWidth;
  const yScale = height / outHeight;
  const xTable = new Int32Array(outWidth);
  let xo = xScale * 0.5;
  for (let x = 0; x < outWidth; x++, xo += xScale) xTable[x] = Math.min(Math.trunc(xo), width - 1);
  const out = new Uint8Array(outWidth * outHeight * channels);
  let yo = yScale * 0.5;
  for (let y = 0; y < outHeight; y++, yo += yScale) {
    const inRow = Math.min(Math.trunc(yo), height - 1) * width * channels;
    for (let x = 0; x < outWidth; x++) {
      const p = inRow + xTable[x] * channels;
      const q = (y * outWidth + x) * channels;
      for (let ch = 0; ch < channels; ch++) out[q + ch] = src.data[p + ch];
    }
  }
  return { width: outWidth, height: outHeight, channels, data: out };
}

/** Pillow's RGBA -> RGBa (and LA -> La): colour x alpha / 255 with MULDIV255 rounding. */
function premultiply(src: PixelImage): PixelImage {
  const { channels, data } = src;
  const out = new Uint8Array(data.length);
  for (let p = 0; p < data.length; p += channels) {
    const alpha = data[p + channels - 1];
    for (let ch = 0; ch < channels - 1; ch++) {
      const t = data[p + ch] * alpha + 128;
      out[p + ch] = ((t >> 8) + t) >> 8;
    }
    out[p + channels - 1] = alpha;
  }
  return { ...src, data: out };
}

/** Pillow's RGBa -> RGBA: colour x 255 / alpha (integer division), left alone at alpha 0 or 255. */
function unpremultiplyInPlace(image: PixelImage): PixelImage {
  const { channels, data } = image;
  for (let p = 0; p < data.length; p += channels) {
    const alpha = data[p + channels - 1];
    if (alpha === 0 || alpha === 255) continue;
    for (let ch = 0; ch < channels - 1; ch++)
      data[p + ch] = Math.min(Math.trunc((255 * data[p + ch]) / alpha), 255);
  }
  return image;
}

function checkImage(image: PixelImage, width: number, height: number): void {
  const { channels } = image;
  if (!Number.isInteger(channels) || channels < 1 || channels > 4) {
    throw new UnmaskError("BAD_IMAGE", `Image has ${channels} channels; 1 to 4 are supported`, {
      subject: "channels",
    });
  }
  if (image.data.length !== image.width * image.height * channels || image.width < 1 || image.height < 1) {
    throw new UnmaskError(
      "BAD_IMAGE",
      `Image data holds ${image.data.length} bytes, ${image.width}x${image.height}x${channels} needs ${image.width * image.height * channels}`,
      { subject: "data" },
    );
  }
  for (const [name, side] of [
    ["width", width],
    ["height", height],
  ] as const) {
    if (!Number.isInteger(side) || side < 1 || side > MAX_RESIZE_SIDE) {
      throw new UnmaskError(
        "BAD_OPTION",
        `Target ${name} must be an integer in 1..${MAX_RESIZE_SIDE}, got ${side}`,
        {
          subject: name,
        },
      );
    }
  }
}

/**
 * Pillow's `image.resize((width, height), filter)` on an 8-bit image. Images with alpha (2 or 4
 * channels) are premultiplied around a convolution filter, as Pillow does for LA and RGBA.
 * @throws UnmaskError BAD_IMAGE for inconsistent data, BAD_OPTION for a bad target size.
 */
export function resizeImage(
  image: PixelImage,
  width: number,
  height: number,
  filter: ResampleFilter = "bicubic",
): PixelImage {
  checkImage(image, width, height);
  if (width === image.width && height === image.height) return { ...image, data: image.data.slice() };
  if (filter === "nearest") return resizeNearest(image, width, height);
  const hasAlpha = image.channels === 2 || image.channels === 4;
  const src = hasAlpha ? premultiply(image) : image;
  const f = FILTERS[filter];
  const needHorizontal = width !== src.width;
  const needVertical = height !== src.height;
  const vertical = precomputeCoefficients(src.height, height, f);
  let current = src;
  if (needHorizontal) {
    const horizontal = precomputeCoefficients(src.width, width, f);
    // Only rows the vertical pass reads: [first tap of row 0, last tap of the last row).
    const firstRow = needVertical ? vertical.bounds[0] : 0;
    const lastRow = needVertical
      ? vertical.bounds[height * 2 - 2] + vertical.bounds[height * 2 - 1]
      : src.height;
    if (needVertical) for (let i = 0; i < height; i++) vertical.bounds[i * 2] -= firstRow;
    const data = resampleHorizontal(src, width, firstRow, lastRow - firstRow, horizontal);
    current = { width, height: lastRow - firstRow, channels: src.channels, data };
  }
  if (needVertical) {
    current = { width, height, channels: src.channels, data: resampleVertical(current, height, vertical) };
  }
  return hasAlpha ? unpremultiplyInPlace(current) : current;
}

/** Pillow bicubic resize of RGB pixels (what OpenAI's `Resize(R, BICUBIC)` does to an RGB image). */
export function resizeRgb(
  image: RgbImage,
  width: number,
  height: number,
  filter: ResampleFilter = "bicubic",
): RgbImage {
  const { data } = resizeImage({ ...image, channels: 3 }, width, height, filter);
  return { width, height, data };
}
