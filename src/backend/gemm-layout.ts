/**
 * How a strided matrix view (its last two dims) is handed to a GEMM: row-major with a leading dimension, or
 * transposed, without copying; anything else is gathered first. Shared by the wasm and native backends.
 */
import { contiguousStrides, numel } from '../tensor/shape.js';
import type { View } from './backend.js';
import { jsKernels } from './js/kernels.js';

export interface GemmLayout {
  trans: boolean;
  /** Leading dimension: elements between consecutive rows (columns when transposed). */
  ld: number;
}

/** The layout of a rows×cols matrix with these strides, or null if GEMM cannot read it in place. */
export function gemmLayout(strides: readonly number[], rows: number, cols: number): GemmLayout | null {
  const r = strides.length;
  const [sr, sc] = [strides[r - 2]!, strides[r - 1]!];
  if ((sc === 1 || cols === 1) && sr >= cols) return { trans: false, ld: Math.max(sr, 1) };
  if ((sr === 1 || rows === 1) && sc >= rows) return { trans: true, ld: Math.max(sc, 1) };
  return null;
}

/** Elements a rows×cols matrix with this layout spans in storage, from its first element. */
export function gemmSpan(rows: number, cols: number, l: GemmLayout): number {
  return l.trans ? (cols - 1) * l.ld + rows : (rows - 1) * l.ld + cols;
}

/** A contiguous copy of a view in no GEMM-able layout (rare: a permuted or expanded matrix). */
export function gatherMatrix(v: View): View {
  const view = {
    data: new Float32Array(numel(v.shape)),
    dtype: 'float32' as const,
    shape: v.shape,
    strides: contiguousStrides(v.shape),
    offset: 0,
  };
  jsKernels.copy(v, view);
  return view;
}

/** A matrix operand as GEMM takes it: in place when its layout allows, else a row-major gathered copy. */
export function gemmOperand(v: View, rows: number, cols: number): { v: View; l: GemmLayout } {
  const l = gemmLayout(v.strides, rows, cols);
  return l ? { v, l } : { v: gatherMatrix(v), l: { trans: false, ld: cols } };
}
