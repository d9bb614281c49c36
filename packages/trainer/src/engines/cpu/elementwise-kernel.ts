/**
 * Elementwise kernels in WebAssembly SIMD, four float32 lanes at a time: QuickGELU forward and
 * backward and an exp for softmax rows. They share one vectorised exp:
 *
 *   exp(x): clamp x to [-87.34, 88.38] (results stay normal floats), n = nearest(x log2 e),
 *   r = x - n ln2 (Cody-Waite split), exp(r) by Cephes' expf polynomial (degree 5 after
 *   1 + r + r^2 P(r)), times 2^n built in the exponent bits. Error about 1-2 ulp of float32.
 *
 * Counts are in floats and must be multiples of 4; the callers handle any tail in JavaScript.
 */
import type { FunctionBuilder } from "./wasm-emit.js";

const LOG2E = 1.44269504088896341;
const LN2_HI = 0.693359375;
const LN2_LO = -2.1219444e-4;
const CEPHES = [
  1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
];
const QUICK_GELU_ALPHA = 1.702;

/** Pops a v128 from the stack and pushes exp of each lane; `tmp` are three scratch v128 locals. */
function emitExp(f: FunctionBuilder, x: number, n: number, r: number): void {
  f.set(x);
  f.get(x).f32x4Const(-87.33654).f32x4Max().f32x4Const(88.37626).f32x4Min().set(x);
  f.get(x).f32x4Const(LOG2E).f32x4Mul().f32x4Nearest().set(n);
  f.get(x)
    .get(n)
    .f32x4Const(LN2_HI)
    .f32x4Mul()
    .f32x4Sub()
    .get(n)
    .f32x4Const(LN2_LO)
    .f32x4Mul()
    .f32x4Sub()
    .set(r);
  // polynomial: ((((p0 r + p1) r + p2) r + p3) r + p4) r + p5, then * r^2 + r + 1
  f.f32x4Const(CEPHES[0]);
  for (let i = 1; i < CEPHES.length; i++) f.get(r).f32x4Mul().f32x4Const(CEPHES[i]).f32x4Add();
  f.get(r).get(r).f32x4Mul().f32x4Mul().get(r).f32x4Add().f32x4Const(1).f32x4Add();
  // 2^n: (n + 127) << 23 as float bits
  f.get(n).i32x4TruncSatF32x4S().i32x4Const(127).i32x4Add().i32(23).i32x4Shl();
  f.f32x4Mul();
}

/** Pushes sigmoid(alpha * v) for the v128 in local v. */
function emitSigmoid(f: FunctionBuilder, v: number, scratch: [number, number, number]): void {
  f.f32x4Const(1);
  f.get(v).f32x4Const(-QUICK_GELU_ALPHA).f32x4Mul();
  emitExp(f, ...scratch);
  f.f32x4Const(1).f32x4Add().f32x4Div();
}

/** quickGelu(out, inp, count): out = x * sigmoid(1.702 x). */
export function quickGeluForwardFunction(f: FunctionBuilder): FunctionBuilder {
  const [out, inp, count] = [0, 1, 2];
  const i = f.local("i32");
  const end = f.local("i32");
  const x = f.local("v128");
  const scratch: [number, number, number] = [f.local("v128"), f.local("v128"), f.local("v128")];
  f.get(count).i32(4).mul().set(end);
  f.forLoop(
    i,
    () => f.i32(0),
    end,
    16,
    () => {
      f.get(inp).get(i).add().v128Load().set(x);
      f.get(out).get(i).add();
      f.get(x);
      emitSigmoid(f, x, scratch);
      f.f32x4Mul().v128Store();
    },
  );
  return f;
}

/**
 * quickGeluBack(dinp, dout, inp, count, signals): slope = s + 1.702 x s (1 - s), s = sigmoid(1.702 x);
 * dinp[k count + i] = dout[k count + i] * slope[i] for each signal k (dinp may alias dout).
 */
export function quickGeluBackwardFunction(f: FunctionBuilder): FunctionBuilder {
  const [dinp, dout, inp, count, signals] = [0, 1, 2, 3, 4];
  const i = f.local("i32");
  const end = f.local("i32");
  const k = f.local("i32");
  const offset = f.local("i32");
  const stride = f.local("i32");
  const x = f.local("v128");
  const e = f.local("v128");
  const s = f.local("v128");
  const slope = f.local("v128");
  const scratch: [number, number, number] = [f.local("v128"), f.local("v128"), f.local("v128")];
  f.get(count).i32(4).mul().set(end);
  f.get(end).set(stride);
  f.forLoop(
    i,
    () => f.i32(0),
    end,
    16,
    () => {
      // e = exp(-alpha x), s = 1 / (1 + e); 1 - s = e s avoids cancelling where s is near 1
      f.get(inp).get(i).add().v128Load().set(x);
      f.get(x).f32x4Const(-QUICK_GELU_ALPHA).f32x4Mul();
      emitExp(f, ...scratch);
      f.set(e);
      f.f32x4Const(1).f32x4Const(1).get(e).f32x4Add().f32x4Div().set(s);
      // slope = s + alpha x s (1 - s) = s (1 + alpha x (s e)); s e stays near 1 where s underflows
      f.get(s)
        .f32x4Const(1)
        .get(x)
        .f32x4Const(QUICK_GELU_ALPHA)
        .f32x4Mul()
        .get(s)
        .get(e)
        .f32x4Mul()
        .f32x4Mul()
        .f32x4Add()
        .f32x4Mul()
        .set(slope);
      f.get(i).set(offset);
      f.forLoop(
        k,
        () => f.i32(0),
        signals,
        1,
        () => {
          f.get(dinp).get(offset).add();
          f.get(dout).get(offset).add().v128Load();
          f.get(slope).f32x4Mul().v128Store();
          f.get(offset).get(stride).add().set(offset);
        },
      );
    },
  );
  return f;
}

/** expShifted(p, count, shiftBits, scaleBits): p = exp((p - shift) * scale), shift/scale as float bits. */
export function expShiftedFunction(f: FunctionBuilder): FunctionBuilder {
  const [p, count, shiftBits, scaleBits] = [0, 1, 2, 3];
  const i = f.local("i32");
  const end = f.local("i32");
  const shift = f.local("v128");
  const scale = f.local("v128");
  const scratch: [number, number, number] = [f.local("v128"), f.local("v128"), f.local("v128")];
  f.get(count).i32(4).mul().set(end);
  f.get(shiftBits).i32x4Splat().set(shift);
  f.get(scaleBits).i32x4Splat().set(scale);
  f.forLoop(
    i,
    () => f.i32(0),
    end,
    16,
    () => {
      f.get(p).get(i).add();
      f.get(p).get(i).add().v128Load().get(shift).f32x4Sub().get(scale).f32x4Mul();
      emitExp(f, ...scratch);
      f.v128Store();
    },
  );
  return f;
}
