/** bf16 values on the host for the device checks: random operands, and bits back to numbers. */
import { f32ToBf16 } from "@unmask/clip";
import { normals } from "../../src/engines/cpu/random-model.js";

/** bf16 bits of n normal draws of standard deviation std (normals(seed), the cpu engine's). */
export function randomBf16(n: number, seed: number, std: number): Uint16Array {
  const draw = normals(seed);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = f32ToBf16(std * draw());
  return out;
}

/** The values of bf16 bits. */
export function bf16Floats(bits: Uint16Array): Float32Array {
  const u = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return new Float32Array(u.buffer);
}

/** x rounded to bf16 (round to nearest even), as a number. */
export function roundBf16(x: number): number {
  return bf16Floats(Uint16Array.of(f32ToBf16(x)))[0];
}
