/**
 * Mixed-precision compute (PyTorch's autocast): inside `autocast('bf16' | 'fp16', fn)`, matmul operands and
 * results are rounded to that 16-bit format, as a 16-bit GEMM would see them, and the activations the graph
 * keeps for the backward pass are stored in 16 bits (half the memory); everything else (reductions, softmax,
 * losses, master weights, gradients, the optimizer) stays float32, as PyTorch's autocast lists prescribe.
 * fp16's narrow range is why fp16 training needs loss scaling (GradScaler); bf16 keeps float32's range.
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../io/safetensors.js';

export type Precision = 'fp32' | 'bf16' | 'fp16';

let current: Precision = 'fp32';

export function autocastPrecision(): Precision {
  return current;
}

/** Run `fn` with matmuls in `precision`. */
export function autocast<T>(precision: Precision, fn: () => T): T {
  const prev = current;
  current = precision;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/** Values as 16-bit patterns (round to nearest even). */
export function packBits(a: Float32Array, precision: Precision): Uint16Array {
  const out = new Uint16Array(a.length);
  const conv = precision === 'bf16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < a.length; i++) out[i] = conv(a[i]!);
  return out;
}

export function unpackBits(bits: Uint16Array, precision: Precision, out: Float32Array): void {
  const conv = precision === 'bf16' ? bf16ToF32 : f16ToF32;
  for (let i = 0; i < bits.length; i++) out[i] = conv(bits[i]!);
}

/** Round every value of `a` in place to the nearest `precision` value (round to nearest even). */
export function roundInPlace(a: Float32Array, precision: Precision): void {
  if (precision === 'bf16') for (let i = 0; i < a.length; i++) a[i] = bf16ToF32(f32ToBf16(a[i]!));
  else if (precision === 'fp16') for (let i = 0; i < a.length; i++) a[i] = f16ToF32(f32ToF16(a[i]!));
}
