/**
 * A very small WebAssembly assembler: just the instructions the GEMM kernels need (i32 arithmetic,
 * blocks and loops, f32 and v128 loads/stores, f32x4 add/mul), and a module writer for functions
 * of i32 parameters that import one shared memory. Writing the bytes from TypeScript keeps the
 * kernels in the source tree, readable, with no build step and no dependency.
 *
 * Encoding: WebAssembly core spec 1.0 binary format plus the fixed-width SIMD proposal (opcode
 * prefix 0xfd) and the threads proposal's shared memory limits (flag 0x03).
 */

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

export type ValueType = "i32" | "f32" | "v128";
const TYPE_CODE: Record<ValueType, number> = { i32: I32, f32: F32, v128: V128 };

function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(text: string): number[] {
  return vector([...new TextEncoder().encode(text)].map((b) => [b]));
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** Emits one function body. Locals are numbered after the parameters, in the order declared. */
export class FunctionBuilder {
  readonly code: number[] = [];
  private readonly locals: ValueType[] = [];

  constructor(
    readonly exportName: string,
    readonly paramCount: number,
  ) {}

  /** A new local of the given type; returns its index. */
  local(type: ValueType): number {
    this.locals.push(type);
    return this.paramCount + this.locals.length - 1;
  }

  private op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }
  private simd(opcode: number, ...immediates: number[]): this {
    return this.op(0xfd, ...uleb(opcode), ...immediates);
  }

  get(index: number): this {
    return this.op(0x20, ...uleb(index));
  }
  set(index: number): this {
    return this.op(0x21, ...uleb(index));
  }
  tee(index: number): this {
    return this.op(0x22, ...uleb(index));
  }
  i32(value: number): this {
    return this.op(0x41, ...sleb(value));
  }
  add(): this {
    return this.op(0x6a);
  }
  sub(): this {
    return this.op(0x6b);
  }
  mul(): this {
    return this.op(0x6c);
  }
  ltU(): this {
    return this.op(0x49);
  }
  remU(): this {
    return this.op(0x70);
  }
  f32Const(value: number): this {
    return this.op(0x43, ...new Uint8Array(new Float32Array([value]).buffer));
  }
  f32Add(): this {
    return this.op(0x92);
  }
  f32Sub(): this {
    return this.op(0x93);
  }
  f32Mul(): this {
    return this.op(0x94);
  }
  f32Div(): this {
    return this.op(0x95);
  }
  f32Sqrt(): this {
    return this.op(0x91);
  }
  f32ReinterpretI32(): this {
    return this.op(0xbe);
  }
  f32ConvertI32U(): this {
    return this.op(0xb3);
  }
  f32x4Splat(): this {
    return this.simd(0x13);
  }
  f32x4ExtractLane(lane: number): this {
    return this.simd(0x1f, lane);
  }
  eq(): this {
    return this.op(0x46);
  }
  ne(): this {
    return this.op(0x47);
  }
  and(): this {
    return this.op(0x71);
  }
  or(): this {
    return this.op(0x72);
  }
  /** select: [a, b, cond] -> cond ? a : b */
  select(): this {
    return this.op(0x1b);
  }
  /** Pushes min(local a, local b), unsigned. */
  minU(a: number, b: number): this {
    return this.get(a).get(b).get(a).get(b).ltU().select();
  }
  /**
   * for (i = <start>; i < end; i += step) { body }  with i and end locals, step a constant or a
   * local (`{ local }`), start an emitter that pushes the first value.
   */
  forLoop(
    i: number,
    start: () => void,
    end: number,
    step: number | { local: number },
    body: () => void,
  ): this {
    start();
    this.set(i);
    this.block().get(i).get(end).ltU().eqz().brIf(0).loop();
    body();
    this.get(i);
    if (typeof step === "number") this.i32(step);
    else this.get(step.local);
    this.add().tee(i).get(end).ltU().brIf(0).end().end();
    return this;
  }
  eqz(): this {
    return this.op(0x45);
  }
  block(): this {
    return this.op(0x02, 0x40);
  }
  loop(): this {
    return this.op(0x03, 0x40);
  }
  if(): this {
    return this.op(0x04, 0x40);
  }
  else(): this {
    return this.op(0x05);
  }
  end(): this {
    return this.op(0x0b);
  }
  /** call of the module's function number `index` (the order given to encodeModule). */
  call(index: number): this {
    return this.op(0x10, ...uleb(index));
  }
  br(depth: number): this {
    return this.op(0x0c, ...uleb(depth));
  }
  brIf(depth: number): this {
    return this.op(0x0d, ...uleb(depth));
  }
  /** f32.load with a constant byte offset (alignment 4). */
  f32Load(offsetBytes = 0): this {
    return this.op(0x2a, 2, ...uleb(offsetBytes));
  }
  f32Store(offsetBytes = 0): this {
    return this.op(0x38, 2, ...uleb(offsetBytes));
  }
  /** v128.load (alignment hint 4 bytes: packed buffers are only float-aligned). */
  v128Load(offsetBytes = 0): this {
    return this.simd(0x00, 2, ...uleb(offsetBytes));
  }
  v128Store(offsetBytes = 0): this {
    return this.simd(0x0b, 2, ...uleb(offsetBytes));
  }
  /** v128.load32_splat: one float broadcast to four lanes. */
  v128Load32Splat(offsetBytes = 0): this {
    return this.simd(0x09, 2, ...uleb(offsetBytes));
  }
  v128Zero(): this {
    return this.simd(0x0c, ...new Array(16).fill(0));
  }
  f32x4Add(): this {
    return this.simd(0xe4);
  }
  f32x4Sub(): this {
    return this.simd(0xe5);
  }
  f32x4Mul(): this {
    return this.simd(0xe6);
  }
  f32x4Div(): this {
    return this.simd(0xe7);
  }
  f32x4Min(): this {
    return this.simd(0xe8);
  }
  f32x4Max(): this {
    return this.simd(0xe9);
  }
  /** Round to nearest, ties to even. */
  f32x4Nearest(): this {
    return this.simd(0x6a);
  }
  i32x4TruncSatF32x4S(): this {
    return this.simd(0xf8);
  }
  i32x4Add(): this {
    return this.simd(0xae);
  }
  /** i32x4.shl by an i32 on the stack. */
  i32x4Shl(): this {
    return this.simd(0xab);
  }
  /** i32x4.splat of an i32 (also splats float bits: lanes are just 32 bits). */
  i32x4Splat(): this {
    return this.simd(0x11);
  }
  /** v128.const of four equal float32 lanes. */
  f32x4Const(value: number): this {
    const lane = new Uint8Array(new Float32Array([value]).buffer);
    return this.simd(0x0c, ...lane, ...lane, ...lane, ...lane);
  }
  /** v128.const of four equal int32 lanes. */
  i32x4Const(value: number): this {
    const lane = new Uint8Array(new Int32Array([value]).buffer);
    return this.simd(0x0c, ...lane, ...lane, ...lane, ...lane);
  }

  encode(): number[] {
    const groups: number[][] = [];
    for (const type of this.locals) {
      const code = TYPE_CODE[type];
      const last = groups[groups.length - 1];
      if (last && last[1] === code) last[0]++;
      else groups.push([1, code]);
    }
    const body = [...vector(groups.map(([count, code]) => [...uleb(count), code])), ...this.code, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

/**
 * A module of functions taking only i32 parameters and returning nothing, importing
 * `env.memory` as a shared memory with the given maximum (pages of 64 KiB).
 */
export function encodeModule(functions: FunctionBuilder[], maxPages: number): Uint8Array {
  const arities = [...new Set(functions.map((f) => f.paramCount))];
  const types = arities.map((n) => [0x60, ...vector(new Array(n).fill([I32])), 0]);
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vector(types)),
    ...section(2, vector([[...name("env"), ...name("memory"), 0x02, 0x03, ...uleb(0), ...uleb(maxPages)]])),
    ...section(3, vector(functions.map((f) => uleb(arities.indexOf(f.paramCount))))),
    ...section(7, vector(functions.map((f, i) => [...name(f.exportName), 0x00, ...uleb(i)]))),
    ...section(10, vector(functions.map((f) => f.encode()))),
  ];
  return new Uint8Array(bytes);
}
