/**
 * Size and speed of .umask files for the R-AMT ViT-B/16 masked set (patch embedding 768x3x16x16,
 * per block attn in_proj 2304x768 and out_proj 768x768, 12 blocks: 28,901,376 parameters), on
 * random masks with 2.56% and 5% of the entries off (independent Bernoulli draws, seeded).
 *
 * Prints bits/parameter of the whole file against the bound n*H(p), encode and decode throughput
 * (single thread, best of several runs), and the official R-AMT 1-bit/parameter size. When the
 * shared official-rmt fixture is present it also reports the trained mask stored there.
 *
 * Run after building: pnpm --filter @unmask/mask-format build && pnpm --filter @unmask/mask-format bench
 */
import { existsSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { decodeMask, encodeMask, maskFromSafetensors } from "../dist/index.js";

const RUNS = 7;
const FINGERPRINT = "0".repeat(64);

function vitB16Shapes() {
  const shapes = [["visual.conv1.weight", [768, 3, 16, 16]]];
  for (let i = 0; i < 12; i++) {
    shapes.push([`visual.transformer.resblocks.${i}.attn.in_proj_weight`, [2304, 768]]);
    shapes.push([`visual.transformer.resblocks.${i}.attn.out_proj.weight`, [768, 768]]);
  }
  return shapes;
}

/** xorshift128+ style generator on two uint32 words, uniform in (0, 1). */
function rng(seed) {
  let a = seed >>> 0 || 1;
  let b = 0x9e3779b9;
  return () => {
    const t = a ^ (a << 11);
    a = b;
    b = (b ^ (b >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    return (b + 0.5) / 4294967296;
  };
}

/** All-ones bits with each entry switched off with probability p (geometric skips). */
function randomMaskBits(numel, p, random) {
  const bits = new Uint8Array(Math.ceil(numel / 8)).fill(0xff);
  if (numel % 8) bits[bits.length - 1] &= (0xff << (8 - (numel % 8))) & 0xff;
  const logq = Math.log1p(-p);
  let k = -1;
  let zeros = 0;
  for (;;) {
    k += 1 + Math.floor(Math.log(random()) / logq);
    if (k >= numel) break;
    bits[k >> 3] &= ~(0x80 >> (k & 7));
    zeros++;
  }
  return { bits, zeros };
}

const H = (p) => (p <= 0 || p >= 1 ? 0 : -p * Math.log2(p) - (1 - p) * Math.log2(1 - p));

function best(fn) {
  let bestMs = Number.POSITIVE_INFINITY;
  let result;
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    result = fn();
    bestMs = Math.min(bestMs, performance.now() - t0);
  }
  return { ms: bestMs, result };
}

function measure(label, input, pTarget) {
  const n = input.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const { ms: encodeMs, result: file } = best(() => encodeMask(input));
  const { ms: decodeMs } = best(() => {
    const mask = decodeMask(file);
    for (const t of mask.tensors) t.bits();
    return mask;
  });
  const mask = decodeMask(file);
  const zeros = mask.tensors.reduce((s, t) => s + t.zeros, 0);
  for (const [i, t] of mask.tensors.entries()) {
    const a = t.bits();
    const b = input.tensors[i].bits;
    for (let j = 0; j < a.length; j++) if (a[j] !== b[j]) throw new Error(`round trip differs in ${t.name}`);
  }
  const pEmp = zeros / n;
  const bitsPerParam = (file.length * 8) / n;
  const encodings = {};
  for (const t of mask.tensors)
    encodings[`${t.encoding}${t.m ? ` m=${t.m}` : ""}`] =
      (encodings[`${t.encoding}${t.m ? ` m=${t.m}` : ""}`] ?? 0) + 1;
  console.log(`\n${label}`);
  console.log(
    `  parameters              ${n.toLocaleString("en")} (${zeros.toLocaleString("en")} off, ${(100 * pEmp).toFixed(3)}%)`,
  );
  console.log(
    `  file                    ${file.length.toLocaleString("en")} bytes (${(file.length / 1e3).toFixed(1)} KB), encodings ${JSON.stringify(encodings)}`,
  );
  console.log(`  bits/parameter          ${bitsPerParam.toFixed(4)}`);
  if (pTarget !== undefined)
    console.log(
      `  bound n*H(p), p=${pTarget}   ${H(pTarget).toFixed(4)} bits/param -> ratio ${(bitsPerParam / H(pTarget)).toFixed(4)}x`,
    );
  console.log(
    `  bound n*H(p_measured)   ${H(pEmp).toFixed(4)} bits/param -> ratio ${(bitsPerParam / H(pEmp)).toFixed(4)}x`,
  );
  const perTensorBound = mask.tensors.reduce((s, t) => s + t.numel * H(t.zeros / t.numel), 0) / n;
  console.log(
    `  bound sum n_i*H(p_i)    ${perTensorBound.toFixed(4)} bits/param -> ratio ${(bitsPerParam / perTensorBound).toFixed(4)}x`,
  );
  console.log(
    `  official 1 bit/param    ${Math.ceil(n / 8).toLocaleString("en")} bytes (${(Math.ceil(n / 8) / 1e6).toFixed(2)} MB), ${(Math.ceil(n / 8) / file.length).toFixed(2)}x larger`,
  );
  console.log(
    `  encode                  ${encodeMs.toFixed(1)} ms = ${(n / encodeMs / 1e3).toFixed(0)} M params/s`,
  );
  console.log(
    `  decode (all tensors)    ${decodeMs.toFixed(1)} ms = ${(n / decodeMs / 1e3).toFixed(0)} M params/s`,
  );
}

console.log(`mask-format bench, node ${process.version}, best of ${RUNS} runs, single thread`);
for (const [p, seed] of [
  [0.0256, 1],
  [0.05, 2],
]) {
  const random = rng(seed);
  const tensors = vitB16Shapes().map(([name, shape]) => {
    const numel = shape.reduce((a, b) => a * b, 1);
    return { name, shape, bits: randomMaskBits(numel, p, random).bits };
  });
  measure(
    `ViT-B/16 masked set, random mask, ${100 * p}% off`,
    { baseModel: { name: "ViT-B/16", fingerprint: FINGERPRINT }, tensors },
    p,
  );
}

const official = "/work/shared/fixtures/official-rmt/expected-masks.safetensors";
if (existsSync(official)) {
  const input = maskFromSafetensors(new Uint8Array(readFileSync(official)), {
    baseModel: { name: "micro-clip", fingerprint: FINGERPRINT },
  });
  measure("trained mask from the official R-AMT code (shared fixture official-rmt, micro-clip)", input);
}
