/**
 * Readable printing for people exploring in a REPL: values clipped to the first and last few entries of each
 * dim, aligned, followed by shape and dtype.
 *   tensor([[ 0.1234, -1.5000, ...,  2.0000],
 *           ...], shape=[32,784], dtype=float32, requiresGrad=true)
 */
import type { Tensor } from './tensor.js';

const EDGE = 3;

export function formatTensor(t: Tensor): string {
  const vals = t.toTypedArray();
  const shape = t.shape;
  const isFloat = t.dtype === 'float32';
  const fmt = (v: number) => {
    if (t.dtype === 'bool') return v ? 'true' : 'false';
    if (!isFloat) return String(v);
    if (!Number.isFinite(v)) return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
    const a = Math.abs(v);
    return a !== 0 && (a >= 1e5 || a < 1e-4) ? v.toExponential(4) : v.toFixed(4);
  };
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((p, d) => p * d, 1));
  const width = Math.max(1, ...Array.from(vals as ArrayLike<number>, (v) => fmt(v).length).slice(0, 10000));
  const pad = (s: string) => s.padStart(width);
  const render = (d: number, off: number, indent: string): string => {
    if (d === shape.length) return pad(fmt(vals[off]!));
    const n = shape[d]!;
    const idx =
      n > 2 * EDGE
        ? [...Array(EDGE).keys(), -1, ...Array.from({ length: EDGE }, (_, i) => n - EDGE + i)]
        : [...Array(n).keys()];
    const parts = idx.map((i) => (i < 0 ? '...' : render(d + 1, off + i * strides[d]!, `${indent} `)));
    const sep = d === shape.length - 1 ? ', ' : `,\n${indent} `;
    return `[${parts.join(sep)}]`;
  };
  const body = render(0, 0, '       ');
  const extras = [`shape=[${shape.join(',')}]`, `dtype=${t.dtype}`];
  if (t.requiresGrad) extras.push('requiresGrad=true');
  return `tensor(${body}, ${extras.join(', ')})`;
}
