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

const LOG2E = Math.LOG2E;
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

/** Pushes the sum of the four lanes of local v (f32). */
function emitHorizontalSum(f: FunctionBuilder, v: number): void {
  f.get(v).f32x4ExtractLane(0).get(v).f32x4ExtractLane(1).f32Add();
  f.get(v).f32x4ExtractLane(2).get(v).f32x4ExtractLane(3).f32Add().f32Add();
}

/** addRows(c, ldcBytes, bias, rows, n): c[r, j] += bias[j] (a bias over rows; n a multiple of 4). */
export function addRowsFunction(f: FunctionBuilder): FunctionBuilder {
  const [c, ldc, bias, rows, n] = [0, 1, 2, 3, 4];
  const r = f.local("i32");
  const j = f.local("i32");
  const end = f.local("i32");
  const row = f.local("i32");
  f.get(n).i32(4).mul().set(end);
  f.forLoop(
    r,
    () => f.i32(0),
    rows,
    1,
    () => {
      f.get(c).get(r).get(ldc).mul().add().set(row);
      emitVectorAddLoop(f, row, bias, j, end);
    },
  );
  return f;
}

/** addInto(dst, src, count): dst += src (count a multiple of 4). */
export function addIntoFunction(f: FunctionBuilder): FunctionBuilder {
  const [dst, src, count] = [0, 1, 2];
  const i = f.local("i32");
  const end = f.local("i32");
  f.get(count).i32(4).mul().set(end);
  emitVectorAddLoop(f, dst, src, i, end);
  return f;
}

/** Emits: for (i = 0; i < end; i += 16) *(dst + i) += *(src + i), four floats at a time (byte offsets). */
function emitVectorAddLoop(f: FunctionBuilder, dst: number, src: number, i: number, end: number): void {
  f.forLoop(
    i,
    () => f.i32(0),
    end,
    16,
    () => {
      f.get(dst).get(i).add();
      f.get(dst).get(i).add().v128Load().get(src).get(i).add().v128Load().f32x4Add();
      f.v128Store();
    },
  );
}

/**
 * layernormForward(out, mean, rstd, inp, weight, bias, rows, width, epsBits): float32 statistics
 * (two passes: mean, then the mean of squared deviations); mean/rstd pointers 0 to skip storing.
 */
export function layernormForwardFunction(f: FunctionBuilder): FunctionBuilder {
  const [out, mean, rstd, inp, weight, bias, rows, width, epsBits] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const r = f.local("i32");
  const j = f.local("i32");
  const end = f.local("i32");
  const x = f.local("i32");
  const o = f.local("i32");
  const acc = f.local("v128");
  const d = f.local("v128");
  const m = f.local("f32");
  const s = f.local("f32");
  const mv = f.local("v128");
  const sv = f.local("v128");
  const inverseWidth = f.local("f32");
  f.get(width).i32(4).mul().set(end);
  f.f32Const(1).get(width).f32ConvertI32U().f32Div().set(inverseWidth);
  f.forLoop(
    r,
    () => f.i32(0),
    rows,
    1,
    () => {
      f.get(inp).get(r).get(end).mul().add().set(x);
      f.get(out).get(r).get(end).mul().add().set(o);
      f.v128Zero().set(acc);
      f.forLoop(
        j,
        () => f.i32(0),
        end,
        16,
        () => {
          f.get(acc).get(x).get(j).add().v128Load().f32x4Add().set(acc);
        },
      );
      emitHorizontalSum(f, acc);
      f.get(inverseWidth).f32Mul().set(m);
      f.get(m).f32x4Splat().set(mv);
      f.v128Zero().set(acc);
      f.forLoop(
        j,
        () => f.i32(0),
        end,
        16,
        () => {
          f.get(x).get(j).add().v128Load().get(mv).f32x4Sub().set(d);
          f.get(acc).get(d).get(d).f32x4Mul().f32x4Add().set(acc);
        },
      );
      f.f32Const(1);
      emitHorizontalSum(f, acc);
      f.get(inverseWidth).f32Mul().get(epsBits).f32ReinterpretI32().f32Add().f32Sqrt().f32Div().set(s);
      f.get(s).f32x4Splat().set(sv);
      f.forLoop(
        j,
        () => f.i32(0),
        end,
        16,
        () => {
          f.get(o).get(j).add();
          f.get(x).get(j).add().v128Load().get(mv).f32x4Sub().get(sv).f32x4Mul();
          f.get(weight).get(j).add().v128Load().f32x4Mul();
          f.get(bias).get(j).add().v128Load().f32x4Add();
          f.v128Store();
        },
      );
      f.get(mean).if().get(mean).get(r).i32(4).mul().add().get(m).f32Store().end();
      f.get(rstd).if().get(rstd).get(r).i32(4).mul().add().get(s).f32Store().end();
    },
  );
  return f;
}

/**
 * layernormBackward(dinp, dout, inp, weight, mean, rstd, rows, width, gradRows, accumulate):
 * gradient row gr uses activation row gr mod rows (signals stacked); float32 sums.
 *   g = dout w, xhat = (x - mean) rstd;  d = rstd (g - mean(g) - xhat mean(g xhat));  dinp (+)= d
 */
export function layernormBackwardFunction(f: FunctionBuilder): FunctionBuilder {
  const [dinp, dout, inp, weight, mean, rstd, rows, width, gradRows, accumulate] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
  ];
  const gr = f.local("i32");
  const r = f.local("i32");
  const j = f.local("i32");
  const end = f.local("i32");
  const x = f.local("i32");
  const g = f.local("i32");
  const di = f.local("i32");
  const sumG = f.local("v128");
  const sumGx = f.local("v128");
  const gv = f.local("v128");
  const xhat = f.local("v128");
  const mv = f.local("v128");
  const sv = f.local("v128");
  const meanG = f.local("v128");
  const meanGx = f.local("v128");
  const inverseWidth = f.local("f32");
  f.get(width).i32(4).mul().set(end);
  f.f32Const(1).get(width).f32ConvertI32U().f32Div().set(inverseWidth);
  f.forLoop(
    gr,
    () => f.i32(0),
    gradRows,
    1,
    () => {
      f.get(gr).get(rows).remU().set(r);
      f.get(inp).get(r).get(end).mul().add().set(x);
      f.get(dout).get(gr).get(end).mul().add().set(g);
      f.get(dinp).get(gr).get(end).mul().add().set(di);
      f.get(mean).get(r).i32(4).mul().add().f32Load().f32x4Splat().set(mv);
      f.get(rstd).get(r).i32(4).mul().add().f32Load().f32x4Splat().set(sv);
      f.v128Zero().set(sumG);
      f.v128Zero().set(sumGx);
      f.forLoop(
        j,
        () => f.i32(0),
        end,
        16,
        () => {
          f.get(g).get(j).add().v128Load().get(weight).get(j).add().v128Load().f32x4Mul().set(gv);
          f.get(x).get(j).add().v128Load().get(mv).f32x4Sub().get(sv).f32x4Mul().set(xhat);
          f.get(sumG).get(gv).f32x4Add().set(sumG);
          f.get(sumGx).get(gv).get(xhat).f32x4Mul().f32x4Add().set(sumGx);
        },
      );
      emitHorizontalSum(f, sumG);
      f.get(inverseWidth).f32Mul().f32x4Splat().set(meanG);
      emitHorizontalSum(f, sumGx);
      f.get(inverseWidth).f32Mul().f32x4Splat().set(meanGx);
      f.forLoop(
        j,
        () => f.i32(0),
        end,
        16,
        () => {
          f.get(di).get(j).add();
          f.get(g).get(j).add().v128Load().get(weight).get(j).add().v128Load().f32x4Mul();
          f.get(meanG).f32x4Sub();
          f.get(x)
            .get(j)
            .add()
            .v128Load()
            .get(mv)
            .f32x4Sub()
            .get(sv)
            .f32x4Mul()
            .get(meanGx)
            .f32x4Mul()
            .f32x4Sub();
          f.get(sv).f32x4Mul();
          // + (accumulate ? dinp : 0)
          f.get(di).get(j).add().v128Load().v128Zero().get(accumulate).select().f32x4Add();
          f.v128Store();
        },
      );
    },
  );
  return f;
}
