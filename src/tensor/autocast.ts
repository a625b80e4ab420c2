/**
 * Mixed-precision compute (PyTorch's autocast): inside `autocast('bf16' | 'fp16', fn)`, matmul operands and
 * results are rounded to that 16-bit format, as a 16-bit GEMM would see them, and the activations the graph
 * keeps for the backward pass are stored in 16 bits (half the memory); everything else (reductions, softmax,
 * losses, master weights, gradients, the optimizer) stays float32, as PyTorch's autocast lists prescribe.
 * fp16's narrow range is why fp16 training needs loss scaling (GradScaler); bf16 keeps float32's range.
 */

import { ValueError } from '../errors.js';

export type Precision = 'fp32' | 'bf16' | 'fp16';

let current: Precision = 'fp32';

export function autocastPrecision(): Precision {
  return current;
}

export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16', 'fp16'];

/** Refuses a precision outside PRECISIONS ('float16', 'half', 'mixed' would train in no defined mode). */
export function checkPrecision(op: string, precision: unknown): asserts precision is Precision {
  if (!PRECISIONS.includes(precision as Precision)) {
    throw new ValueError(op, `precision must be ${PRECISIONS.join(', ')} (got ${JSON.stringify(precision)})`);
  }
}

/** Run `fn` with matmuls in `precision`. */
export function autocast<T>(precision: Precision, fn: () => T): T {
  checkPrecision('autocast', precision);
  const prev = current;
  current = precision;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/*
 * The 16-bit conversions below work on the float32 bit patterns (no per-element calls, no Math.pow): a training
 * step under autocast rounds every matmul operand, and the scalar converters of io/safetensors.ts took ~100 ns
 * per fp16 value (a 784×256 weight: 20 ms). They give the same bits as those converters (test/tensor/autocast).
 * fp16: a normal half keeps 10 of float32's 23 mantissa bits, rounded half to even by adding 0xfff plus the
 * lowest kept bit before masking; below 2^-14 a half is a multiple of 2^-24; from 65520 up it is infinite.
 */
const F16_MIN_NORMAL = 0x38800000; // 2^-14 as float32 bits
const F16_OVERFLOW = 0x477ff000; // 65520: rounds to inf
const SIGN = 0x80000000;

const HALF_ULP = 2 ** -24; // a subnormal half's unit

/** |x| (below 2^-14) in units of 2^-24, rounded half to even: a subnormal half's bits. */
function halfUnits(x: number): number {
  const v = Math.abs(x) / HALF_ULP;
  let q = Math.floor(v);
  const r = v - q;
  if (r > 0.5 || (r === 0.5 && (q & 1) !== 0)) q++;
  return q;
}

const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/**
 * Values as 16-bit patterns (round to nearest even). A finite value past fp16's range becomes Infinity, or, with
 * `finite`, makes the call return null (nothing to keep: the caller keeps float32).
 */
export function packBits(a: Float32Array, precision: Precision, finite?: false): Uint16Array;
export function packBits(a: Float32Array, precision: Precision, finite: true): Uint16Array | null;
export function packBits(a: Float32Array, precision: Precision, finite = false): Uint16Array | null {
  const out = new Uint16Array(a.length);
  const u = bitsOf(a);
  if (precision === 'bf16') {
    for (let i = 0; i < u.length; i++) {
      const w = u[i]!;
      out[i] = (w & 0x7fffffff) > 0x7f800000 ? 0x7fc0 : (w + 0x7fff + ((w >>> 16) & 1)) >>> 16;
    }
    return out;
  }
  for (let i = 0; i < u.length; i++) {
    const w = u[i]!;
    const abs = w & 0x7fffffff;
    const sign = (w >>> 16) & 0x8000;
    if (abs >= F16_MIN_NORMAL && abs < F16_OVERFLOW)
      out[i] = sign | ((((abs + 0xfff + ((abs >>> 13) & 1)) & 0x7fffe000) - 0x38000000) >>> 13);
    else if (abs < F16_MIN_NORMAL) out[i] = sign | halfUnits(a[i]!);
    else if (finite && abs < 0x7f800000) return null;
    else out[i] = sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00);
  }
  return out;
}

export function unpackBits(bits: Uint16Array, precision: Precision, out: Float32Array): void {
  const u = bitsOf(out);
  if (precision === 'bf16') {
    for (let i = 0; i < bits.length; i++) u[i] = bits[i]! << 16;
    return;
  }
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i]!;
    const exp = h & 0x7c00;
    if (exp === 0) out[i] = (h & 0x8000 ? -(h & 0x3ff) : h & 0x3ff) * HALF_ULP;
    else if (exp === 0x7c00) u[i] = ((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13);
    else u[i] = ((h & 0x8000) << 16) | (((h & 0x7fff) + 0x1c000) << 13);
  }
}

/** Round every value of `a` in place to the nearest `precision` value (round to nearest even). */
export function roundInPlace(a: Float32Array, precision: Precision): void {
  const u = bitsOf(a);
  if (precision === 'bf16') {
    for (let i = 0; i < u.length; i++) {
      const w = u[i]!;
      u[i] = (w & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : (w + 0x7fff + ((w >>> 16) & 1)) & 0xffff0000;
    }
    return;
  }
  if (precision !== 'fp16') return;
  for (let i = 0; i < u.length; i++) {
    const w = u[i]!;
    const abs = w & 0x7fffffff;
    if (abs >= F16_MIN_NORMAL && abs < F16_OVERFLOW)
      u[i] = (w & SIGN) | ((abs + 0xfff + ((abs >>> 13) & 1)) & 0x7fffe000);
    else if (abs < F16_MIN_NORMAL) {
      const q = halfUnits(a[i]!);
      a[i] = (w & SIGN ? -q : q) * HALF_ULP;
    } else u[i] = (w & SIGN) | (abs > 0x7f800000 ? 0x7fc00000 : 0x7f800000);
  }
}
