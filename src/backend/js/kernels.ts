/**
 * The TypeScript reference backend: every kernel, plainly and correctly. It is the oracle the fast backends
 * are tested against, and the fallback for any kernel they lack.
 *
 * Views are strided; outputs are contiguous. Walking a view: `rowOffsets(v)` lists the storage offset of each
 * row (all dims but the last), the inner loop then steps by the last stride. Each kernel is built by a factory
 * so that V8 specialises its inner loop for one element function (a shared loop calling many functions would
 * go megamorphic and run several times slower).
 */
import { attentionBackward, attentionForward } from '../../nn/attention-kernels.js';
import { adagradUpdate, adamUpdate, rmspropUpdate, sgdUpdate } from '../../optim/update-kernels.js';
import { allocStorage, type TypedArray } from '../../tensor/dtype.js';
import { contiguousStrides, numel } from '../../tensor/shape.js';
import type {
  BinaryKernel,
  CompareKernel,
  ConvGeometry,
  KernelTable,
  MatmulEpilogue,
  UnaryKernel,
  View,
} from '../backend.js';
import { registerBackend } from '../backend.js';

/** Storage offset of each row of `v` (every dim but the last), in row-major order. */
export function rowOffsets(shape: readonly number[], strides: readonly number[], offset: number): Int32Array {
  const rank = shape.length;
  const rows = rank <= 1 ? 1 : numel(shape.slice(0, -1));
  const out = new Int32Array(rows);
  if (rank <= 1) {
    out[0] = offset;
    return out;
  }
  const idx = new Array<number>(rank - 1).fill(0);
  let off = offset;
  for (let r = 0; r < rows; r++) {
    out[r] = off;
    // Odometer over dims rank-2 .. 0.
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]!++;
      off += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      off -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

const inner = (v: { shape: readonly number[] }) => (v.shape.length === 0 ? 1 : v.shape[v.shape.length - 1]!);
const innerStride = (v: { strides: readonly number[] }) =>
  v.strides.length === 0 ? 1 : v.strides[v.strides.length - 1]!;

/**
 * The storage offset of a view that walks its storage densely in row-major order (size-1 dims aside), or -1.
 * Dense views take the flat fast paths below: no row table, unit stride.
 */
export function denseOffset(v: View): number {
  let acc = 1;
  for (let i = v.shape.length - 1; i >= 0; i--) {
    const d = v.shape[i]!;
    if (d === 0) return v.offset;
    if (d !== 1 && v.strides[i] !== acc) return -1;
    acc *= d;
  }
  return v.offset;
}

/** True when every stride is 0 (a scalar broadcast to the view's shape). */
const isBroadcastScalar = (v: View) => v.strides.every((s) => s === 0);

function unary(f: (x: number) => number): UnaryKernel {
  return (x, out) => {
    const d = denseOffset(x);
    if (d >= 0) {
      const xd = x.data;
      for (let i = 0, n = out.length; i < n; i++) out[i] = f(xd[d + i]!);
      return;
    }
    const n = inner(x);
    const s = innerStride(x);
    const rows = rowOffsets(x.shape, x.strides, x.offset);
    const xd = x.data;
    let o = 0;
    for (let r = 0; r < rows.length; r++) {
      let i = rows[r]!;
      for (let j = 0; j < n; j++, i += s) out[o++] = f(xd[i]!);
    }
  };
}

/**
 * Dense loops written out per op. NOTE: a loop that calls an element function through a closure goes
 * megamorphic once several ops share it and runs ~10-40× slower; the hot dense cases therefore get their own
 * loops, and only strided/broadcast views take the generic path.
 */
type Arr = ArrayLike<number> & { [i: number]: number };
function denseBinary(
  op: string,
  a: Arr,
  ia: number,
  sa: number,
  b: Arr,
  ib: number,
  sb: number,
  out: Arr,
  n: number,
): boolean {
  // sa/sb are 1 (dense) or 0 (scalar broadcast).
  switch (op) {
    case 'add':
      for (let i = 0; i < n; i++) out[i] = a[ia + i * sa]! + b[ib + i * sb]!;
      return true;
    case 'sub':
      for (let i = 0; i < n; i++) out[i] = a[ia + i * sa]! - b[ib + i * sb]!;
      return true;
    case 'mul':
      for (let i = 0; i < n; i++) out[i] = a[ia + i * sa]! * b[ib + i * sb]!;
      return true;
    case 'div':
      for (let i = 0; i < n; i++) out[i] = a[ia + i * sa]! / b[ib + i * sb]!;
      return true;
    case 'gt':
      for (let i = 0; i < n; i++) out[i] = a[ia + i * sa]! > b[ib + i * sb]! ? 1 : 0;
      return true;
    case 'lt':
      for (let i = 0; i < n; i++) out[i] = a[ia + i * sa]! < b[ib + i * sb]! ? 1 : 0;
      return true;
    case 'eq':
      for (let i = 0; i < n; i++) out[i] = a[ia + i * sa]! === b[ib + i * sb]! ? 1 : 0;
      return true;
    default:
      return false;
  }
}

/**
 * C's pow, which PyTorch follows: 1^y = 1 for every y (NaN included) and (-1)^±Inf = 1, where JavaScript's
 * Math.pow gives NaN.
 */
function powC(x: number, y: number): number {
  if (x === 1 || (x === -1 && (y === Infinity || y === -Infinity))) return 1;
  return x ** y;
}

function binary(f: (x: number, y: number) => number, op = ''): BinaryKernel {
  return (a, b, out) => {
    const da = denseOffset(a);
    const db = denseOffset(b);
    const ad = a.data;
    const bd = b.data;
    const n0 = out.length;
    if (da >= 0 && (db >= 0 || isBroadcastScalar(b))) {
      if (denseBinary(op, ad, da, 1, bd, db >= 0 ? db : b.offset, db >= 0 ? 1 : 0, out, n0)) return;
      if (db >= 0) for (let i = 0; i < n0; i++) out[i] = f(ad[da + i]!, bd[db + i]!);
      else for (let i = 0, y = bd[b.offset]!; i < n0; i++) out[i] = f(ad[da + i]!, y);
      return;
    }
    if (db >= 0 && isBroadcastScalar(a)) {
      if (denseBinary(op, ad, a.offset, 0, bd, db, 1, out, n0)) return;
      for (let i = 0, x = ad[a.offset]!; i < n0; i++) out[i] = f(x, bd[db + i]!);
      return;
    }
    const n = inner(a);
    const sa = innerStride(a);
    const sb = innerStride(b);
    const ra = rowOffsets(a.shape, a.strides, a.offset);
    const rb = rowOffsets(b.shape, b.strides, b.offset);
    let o = 0;
    if (op === 'add' || op === 'mul' || op === 'sub') {
      // Row-broadcast (bias add, per-channel scale): the inner loop is dense in both or strided in one.
      for (let r = 0; r < ra.length; r++) {
        denseStrided(op, ad, ra[r]!, sa, bd, rb[r]!, sb, out, o, n);
        o += n;
      }
      return;
    }
    for (let r = 0; r < ra.length; r++) {
      let i = ra[r]!;
      let k = rb[r]!;
      for (let j = 0; j < n; j++, i += sa, k += sb) out[o++] = f(ad[i]!, bd[k]!);
    }
  };
}

function denseStrided(
  op: string,
  a: Arr,
  ia: number,
  sa: number,
  b: Arr,
  ib: number,
  sb: number,
  out: Arr,
  o: number,
  n: number,
): void {
  if (op === 'add') for (let j = 0; j < n; j++) out[o + j] = a[ia + j * sa]! + b[ib + j * sb]!;
  else if (op === 'mul') for (let j = 0; j < n; j++) out[o + j] = a[ia + j * sa]! * b[ib + j * sb]!;
  else for (let j = 0; j < n; j++) out[o + j] = a[ia + j * sa]! - b[ib + j * sb]!;
}

function compare(f: (x: number, y: number) => boolean, op: string): CompareKernel {
  return binary((x, y) => (f(x, y) ? 1 : 0), op);
}

/** erf by Abramowitz-Stegun 7.1.26 is only 1e-7 absolute; this uses the W. J. Cody rational form (float64). */
export function erf(x: number): number {
  // NaN stays NaN and ±0 keeps its sign (erf is odd), as IEEE and PyTorch give.
  if (Number.isNaN(x) || x === 0) return x;
  const ax = Math.abs(x);
  if (ax < 0.5) {
    // Taylor/Maclaurin through x^21: |error| < 1e-16 for |x| < 0.5.
    const t = x * x;
    let term = x;
    let sum = x;
    for (let k = 1; k < 12; k++) {
      term *= -t / k;
      sum += term / (2 * k + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  return x > 0 ? 1 - erfc(ax) : erfc(ax) - 1;
}

/** Complementary error function for x >= 0.5 by a continued fraction (Lentz), float64 accurate. */
function erfc(x: number): number {
  if (x > 27) return 0;
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let k = 1; k < 300; k++) {
    const an = k / 2;
    d = x + an * d;
    d = d === 0 ? tiny : d;
    c = x + an / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** Numerically stable logistic: never evaluates exp of a large positive number. */
function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** Offsets of every element of the sub-space spanned by `dims` of a view, relative to the view's offset. */
function subspaceOffsets(v: View, dims: readonly number[]): Int32Array {
  const shape = dims.map((d) => v.shape[d]!);
  const strides = dims.map((d) => v.strides[d]!);
  const rows = rowOffsets(shape, strides, 0);
  const n = inner({ shape });
  const s = innerStride({ strides });
  const out = new Int32Array(rows.length * n);
  let o = 0;
  for (let r = 0; r < rows.length; r++) for (let j = 0; j < n; j++) out[o++] = rows[r]! + j * s;
  return out;
}

function reduce(init: number, f: (acc: number, x: number) => number) {
  return (x: View, axes: readonly number[], out: TypedArray): void => {
    const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
    const ko = subspaceOffsets(x, kept);
    const ro = subspaceOffsets(x, axes);
    const xd = x.data;
    for (let o = 0; o < ko.length; o++) {
      const base = x.offset + ko[o]!;
      let acc = init;
      for (let r = 0; r < ro.length; r++) acc = f(acc, xd[base + ro[r]!]!);
      out[o] = acc;
    }
  };
}

function argReduce(better: (x: number, best: number) => boolean) {
  return (x: View, axis: number, out: Int32Array): void => {
    const kept = x.shape.map((_, i) => i).filter((i) => i !== axis);
    const ko = subspaceOffsets(x, kept);
    const n = x.shape[axis]!;
    const s = x.strides[axis]!;
    const xd = x.data;
    for (let o = 0; o < ko.length; o++) {
      const base = x.offset + ko[o]!;
      let best = xd[base]!;
      let bi = 0;
      for (let j = 1; j < n; j++) {
        const v = xd[base + j * s]!;
        // NaN wins, like PyTorch: once best is NaN nothing replaces it.
        if (!Number.isNaN(best) && (Number.isNaN(v) || better(v, best))) {
          best = v;
          bi = j;
        }
      }
      out[o] = bi;
    }
  };
}

/** NaN-propagating max/min, as torch.maximum/amax do. */
const nanMax = (a: number, b: number) =>
  a > b || Number.isNaN(a) ? a : Number.isNaN(b) ? b : Math.max(b, a);
const nanMin = (a: number, b: number) =>
  a < b || Number.isNaN(a) ? a : Number.isNaN(b) ? b : Math.min(b, a);

/** C[m,n] = sum_k A[m,k] B[k,n] for each batch; B rows are made contiguous first so the inner loop is unit-stride. */
function matmul(a: View, b: View, out: Float32Array, epilogue?: MatmulEpilogue): void {
  const r = a.shape.length;
  const M = a.shape[r - 2]!;
  const K = a.shape[r - 1]!;
  const N = b.shape[r - 1]!;
  const batchShape = a.shape.slice(0, -2);
  const aRows = rowOffsets([...batchShape, 1], [...a.strides.slice(0, -2), 0], a.offset);
  const bRows = rowOffsets([...batchShape, 1], [...b.strides.slice(0, -2), 0], b.offset);
  const [sam, sak] = [a.strides[r - 2]!, a.strides[r - 1]!];
  const [sbk, sbn] = [b.strides[r - 2]!, b.strides[r - 1]!];
  const bc = new Float32Array(K * N);
  const ad = a.data;
  const bd = b.data;
  const acc = new Float64Array(N);
  for (let t = 0; t < aRows.length; t++) {
    for (let k = 0; k < K; k++)
      for (let n = 0; n < N; n++) bc[k * N + n] = bd[bRows[t]! + k * sbk + n * sbn]!;
    const ob = t * M * N;
    for (let m = 0; m < M; m++) {
      acc.fill(0);
      const arow = aRows[t]! + m * sam;
      for (let k = 0; k < K; k++) {
        // No skipping of zeros: 0·Inf and 0·NaN are NaN, as BLAS and the wasm GEMM compute them.
        const av = ad[arow + k * sak]!;
        const bo = k * N;
        for (let n = 0; n < N; n++) acc[n]! += av * bc[bo + n]!;
      }
      for (let n = 0; n < N; n++) out[ob + m * N + n] = acc[n]!;
    }
  }
  if (epilogue) applyEpilogue(out, N, epilogue);
}

/** out (rows, N) = relu?(out + bias): the matmul epilogue as a separate pass (the product already rounded). */
export function applyEpilogue(out: Float32Array, N: number, { bias, relu }: MatmulEpilogue): void {
  for (let i = 0; i < out.length; i += N) {
    for (let n = 0; n < N; n++) {
      const v = bias ? Math.fround(out[i + n]! + bias[n]!) : out[i + n]!;
      out[i + n] = relu && !(v > 0) && !Number.isNaN(v) ? 0 : v;
    }
  }
}

/** Strided copy: dst and src have the same shape (src may be broadcast). Converts dtype on store. */
function copy(src: View, dst: View): void {
  // Nothing to copy; an empty view's offset may lie past its storage (set() would throw a RangeError).
  if (numel(dst.shape) === 0) return;
  const ds0 = denseOffset(dst);
  if (ds0 >= 0 && src.dtype === dst.dtype) {
    const n = numel(dst.shape);
    const ss0 = denseOffset(src);
    if (ss0 >= 0) {
      (dst.data as Float32Array).set((src.data as Float32Array).subarray(ss0, ss0 + n), ds0);
      return;
    }
    if (isBroadcastScalar(src)) {
      dst.data.fill(src.data[src.offset]!, ds0, ds0 + n);
      return;
    }
  }
  const n = inner(dst);
  const ss = innerStride(src);
  const ds = innerStride(dst);
  const rs = rowOffsets(src.shape, src.strides, src.offset);
  const rd = rowOffsets(dst.shape, dst.strides, dst.offset);
  const sd = src.data;
  const dd = dst.data;
  const toInt = dst.dtype !== 'float32';
  for (let r = 0; r < rd.length; r++) {
    let i = rs[r]!;
    let o = rd[r]!;
    for (let j = 0; j < n; j++, i += ss, o += ds) {
      const v = sd[i]!;
      // Float to int truncates toward zero like a C cast; bool stores 0/1.
      dd[o] = toInt ? (dst.dtype === 'bool' ? (v !== 0 ? 1 : 0) : Math.trunc(v)) : v;
    }
  }
}

/** The sub-view of v at position i of `axis` (that dim dropped). */
function at(v: View, axis: number, i: number): View {
  return {
    data: v.data,
    dtype: v.dtype,
    shape: v.shape.filter((_, d) => d !== axis),
    strides: v.strides.filter((_, d) => d !== axis),
    offset: v.offset + i * v.strides[axis]!,
  };
}

/**
 * A batch gathered from a large dataset reads rows scattered over memory, each a cache and TLB miss that one
 * block copy after another waits for in turn. Reading two values of every row first starts those misses
 * together: 512 random rows of 784 floats out of Fashion-MNIST's 60,000 took 269 and 396 µs instead of
 * 326 and 432 (medians of 9 interleaved rounds, two runs). Short rows are mostly one line each: no gain.
 */
const TOUCH_MIN_ROW = 256;
/**
 * Rows up to this long are gathered by a loop over their values: a subarray per row costs more than the copy
 * (512 int32 labels: 67 µs as views, 3 µs as a loop; rows of 16: 98 vs 69 µs; of 32 the views win).
 */
const GATHER_LOOP_MAX_ROW = 16;
/** Where touchRows leaves its sum, so the engine cannot drop the reads as unused. */
const touched = new Float64Array(1);
function touchRows(data: TypedArray, offset: number, row: number, index: Int32Array): void {
  let s = 0;
  for (let i = 0; i < index.length; i++) {
    const from = offset + index[i]! * row;
    s += data[from]! + data[from + (row >> 1)]!;
  }
  touched[0] = s;
}

/** Short rows (labels: one value each) by a plain loop, not an array view per row. */
function gatherShortRows(
  data: TypedArray,
  d0: number,
  row: number,
  index: Int32Array,
  out: TypedArray,
): void {
  for (let i = 0, o = 0; i < index.length; i++) {
    for (let j = 0, from = d0 + index[i]! * row; j < row; j++) out[o++] = data[from + j]!;
  }
}

function gather(x: View, axis: number, index: Int32Array, out: TypedArray): void {
  const d0 = denseOffset(x);
  if (axis === 0 && d0 >= 0) {
    // Rows of a dense tensor: one block copy per index (the DataLoader's batch gather).
    const row = x.shape.length ? numel(x.shape) / Math.max(x.shape[0]!, 1) : 1;
    if (row <= GATHER_LOOP_MAX_ROW) {
      gatherShortRows(x.data, d0, row, index, out);
      return;
    }
    if (row >= TOUCH_MIN_ROW) touchRows(x.data, d0, row, index);
    for (let i = 0; i < index.length; i++) {
      const from = d0 + index[i]! * row;
      (out as Float32Array).set((x.data as Float32Array).subarray(from, from + row), i * row);
    }
    return;
  }
  const shape = x.shape.map((d, i) => (i === axis ? index.length : d));
  const o: View = { data: out, dtype: x.dtype, shape, strides: contiguousStrides(shape), offset: 0 };
  for (let i = 0; i < index.length; i++) copy(at(x, axis, index[i]!), at(o, axis, i));
}

function scatterAdd(dst: View, axis: number, index: Int32Array, src: View): void {
  for (let i = 0; i < index.length; i++) {
    const d = at(dst, axis, index[i]!);
    const s = at(src, axis, i);
    const n = inner(d);
    const rd = rowOffsets(d.shape, d.strides, d.offset);
    const rs = rowOffsets(s.shape, s.strides, s.offset);
    const ds = innerStride(d);
    const ss = innerStride(s);
    for (let r = 0; r < rd.length; r++) {
      for (let j = 0, p = rd[r]!, q = rs[r]!; j < n; j++, p += ds, q += ss) dst.data[p]! += src.data[q]!;
    }
  }
}

/** Rows of C over the last axis of a contiguous view. Max-subtracted, so ±1000 stays finite. */
function softmaxRows(log: boolean) {
  return (x: View, out: Float32Array): void => {
    const C = inner(x);
    const R = C === 0 ? 0 : numel(x.shape) / C;
    const xd = x.data;
    for (let r = 0; r < R; r++) {
      const base = x.offset + r * C;
      let m = -Infinity;
      for (let c = 0; c < C; c++) m = nanMax(m, xd[base + c]!);
      if (m === -Infinity) m = 0; // all -inf: exp gives 0s, log gives -inf/NaN as in PyTorch
      let s = 0;
      for (let c = 0; c < C; c++) s += Math.exp(xd[base + c]! - m);
      const ls = Math.log(s);
      for (let c = 0; c < C; c++) {
        const z = xd[base + c]! - m;
        out[r * C + c] = log ? z - ls : Math.exp(z) / s;
      }
    }
  };
}

/** Shape legend: N batch, C channels, S spatial positions per channel (L, or H·W). x is (N, C, S) contiguous. */
function batchNormForward(
  x: Float32Array,
  N: number,
  C: number,
  S: number,
  weight: Float32Array | null,
  bias: Float32Array | null,
  eps: number,
  out: Float32Array,
  mean: Float32Array,
  invstd: Float32Array,
  relu = false,
): void {
  const n = N * S;
  for (let c = 0; c < C; c++) {
    // Two passes (mean, then squared deviations), in float64: the one-pass formula loses digits.
    let s = 0;
    for (let i = 0; i < N; i++) for (let j = 0, o = (i * C + c) * S; j < S; j++) s += x[o + j]!;
    const m = s / n;
    let v = 0;
    for (let i = 0; i < N; i++) {
      for (let j = 0, o = (i * C + c) * S; j < S; j++) {
        const d = x[o + j]! - m;
        v += d * d;
      }
    }
    const is = 1 / Math.sqrt(v / n + eps);
    mean[c] = m;
    invstd[c] = is;
    const w = weight ? weight[c]! : 1;
    const b = bias ? bias[c]! : 0;
    for (let i = 0; i < N; i++) {
      for (let j = 0, o = (i * C + c) * S; j < S; j++) {
        const y = (x[o + j]! - m) * is * w + b;
        out[o + j] = relu && !(y > 0) && !Number.isNaN(y) ? 0 : y;
      }
    }
  }
}

function batchNormBackward(
  x: Float32Array,
  dy: Float32Array,
  N: number,
  C: number,
  S: number,
  weight: Float32Array | null,
  mean: Float32Array,
  invstd: Float32Array,
  dx: Float32Array,
  dweight: Float32Array,
  dbias: Float32Array,
  reluOut: Float32Array | null = null,
): void {
  const n = N * S;
  // dy through the fused ReLU: kept where its output is positive.
  const g = (o: number) => (reluOut && reluOut[o]! <= 0 ? 0 : dy[o]!);
  for (let c = 0; c < C; c++) {
    const m = mean[c]!;
    const is = invstd[c]!;
    let sdy = 0;
    let sdyx = 0;
    for (let i = 0; i < N; i++) {
      for (let j = 0, o = (i * C + c) * S; j < S; j++) {
        sdy += g(o + j);
        sdyx += g(o + j) * (x[o + j]! - m) * is;
      }
    }
    dbias[c] = sdy;
    dweight[c] = sdyx;
    const k = (weight ? weight[c]! : 1) * is;
    const mdy = sdy / n;
    const mdyx = sdyx / n;
    for (let i = 0; i < N; i++) {
      for (let j = 0, o = (i * C + c) * S; j < S; j++)
        dx[o + j] = k * (g(o + j) - mdy - (x[o + j]! - m) * is * mdyx);
    }
  }
}

/** cols[n, (c·kh + i)·kw + j, oy·Wo + ox] = x[n, c, oy·stride + i - pad, ox·stride + j - pad] (0 outside). */
function im2col(x: Float32Array, g: ConvGeometry, cols: Float32Array): void {
  const { N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo } = g;
  const L = Ho * Wo;
  let o = 0;
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const xb = (n * C + c) * H * W;
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++, o += L) {
          for (let oy = 0; oy < Ho; oy++) {
            const y = oy * sh + i * dh - ph;
            const row = o + oy * Wo;
            if (y < 0 || y >= H) {
              cols.fill(0, row, row + Wo);
              continue;
            }
            for (let ox = 0; ox < Wo; ox++) {
              const xx = ox * sw + j * dw - pw;
              cols[row + ox] = xx >= 0 && xx < W ? x[xb + y * W + xx]! : 0;
            }
          }
        }
      }
    }
  }
}

function col2im(cols: Float32Array, g: ConvGeometry, dx: Float32Array): void {
  const { N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo } = g;
  const L = Ho * Wo;
  let o = 0;
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const xb = (n * C + c) * H * W;
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++, o += L) {
          for (let oy = 0; oy < Ho; oy++) {
            const y = oy * sh + i * dh - ph;
            if (y < 0 || y >= H) continue;
            for (let ox = 0; ox < Wo; ox++) {
              const xx = ox * sw + j * dw - pw;
              if (xx >= 0 && xx < W) dx[xb + y * W + xx]! += cols[o + oy * Wo + ox]!;
            }
          }
        }
      }
    }
  }
}

/**
 * g where x is not <= 0, else 0: PyTorch's threshold_backward (`result <= 0 ? 0 : grad`), so a NaN input passes
 * its gradient on, as in PyTorch, instead of hiding it. x may be the ReLU input or its output: the same mask.
 */
function reluBackward(x: View, g: View, out: Float32Array): void {
  const dx = denseOffset(x);
  const dg = denseOffset(g);
  if (dx >= 0 && dg >= 0) {
    const xd = x.data;
    const gd = g.data;
    for (let i = 0, n = out.length; i < n; i++) out[i] = xd[dx + i]! <= 0 ? 0 : gd[dg + i]!;
    return;
  }
  const mask = new Float32Array(out.length);
  unary((v) => (v <= 0 ? 0 : 1))(x, mask);
  unary((v) => v)(g, out);
  // A product would turn g = Inf at a masked position into NaN.
  for (let i = 0; i < out.length; i++) if (mask[i] === 0) out[i] = 0;
}

/** Rows of C logits: the max-subtracted log-sum-exp, in float64. */
function softmaxCrossEntropy(
  logits: Float32Array,
  targets: Int32Array,
  R: number,
  C: number,
  probs: Float32Array,
): number {
  let total = 0;
  for (let r = 0; r < R; r++) {
    const o = r * C;
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = nanMax(m, logits[o + c]!);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(logits[o + c]! - m);
    for (let c = 0; c < C; c++) probs[o + c] = Math.exp(logits[o + c]! - m) / s;
    total += Math.log(s) + m - logits[o + targets[r]!]!;
  }
  return total;
}

function softmaxCrossEntropyBackward(
  probs: Float32Array,
  targets: Int32Array,
  R: number,
  C: number,
  scale: number,
  dx: Float32Array,
): void {
  for (let i = 0, n = R * C; i < n; i++) dx[i] = scale * probs[i]!;
  for (let r = 0; r < R; r++) dx[r * C + targets[r]!]! -= scale;
}

/** Exported for backends that reuse parts of the reference (and for tests). */
export const jsKernels: KernelTable = {
  neg: unary((x) => -x),
  exp: unary(Math.exp),
  log: unary(Math.log),
  sqrt: unary(Math.sqrt),
  abs: unary(Math.abs),
  tanh: unary(Math.tanh),
  sigmoid: unary(sigmoid),
  // x < 0 ? 0 : x keeps NaN and -0, as PyTorch's relu does (and wasm's f32x4.pmax).
  // biome-ignore lint/complexity/useMathMinMax: Math.max(-0, 0) is +0 and Math.max(NaN, 0) NaN by other rules
  relu: unary((x) => (x < 0 ? 0 : x)),
  erf: unary(erf),
  // (0 < x) - (x < 0), as PyTorch: NaN and -0 give 0 (so abs's gradient at NaN is 0, as PyTorch's).
  sign: unary((x) => (x > 0 ? 1 : x < 0 ? -1 : 0)),
  add: binary((x, y) => x + y, 'add'),
  sub: binary((x, y) => x - y, 'sub'),
  mul: binary((x, y) => x * y, 'mul'),
  div: binary((x, y) => x / y, 'div'),
  pow: binary(powC),
  maximum: binary(nanMax),
  minimum: binary(nanMin),
  eq: compare((x, y) => x === y, 'eq'),
  ne: compare((x, y) => x !== y, 'ne'),
  lt: compare((x, y) => x < y, 'lt'),
  le: compare((x, y) => x <= y, 'le'),
  gt: compare((x, y) => x > y, 'gt'),
  ge: compare((x, y) => x >= y, 'ge'),
  where: (cond, a, b, out) => {
    const n = inner(a);
    const [sc, sa, sb] = [innerStride(cond), innerStride(a), innerStride(b)];
    const rc = rowOffsets(cond.shape, cond.strides, cond.offset);
    const ra = rowOffsets(a.shape, a.strides, a.offset);
    const rb = rowOffsets(b.shape, b.strides, b.offset);
    let o = 0;
    for (let r = 0; r < ra.length; r++) {
      for (let j = 0, c = rc[r]!, i = ra[r]!, k = rb[r]!; j < n; j++, c += sc, i += sa, k += sb) {
        out[o++] = cond.data[c] ? a.data[i]! : b.data[k]!;
      }
    }
  },
  clamp: (x, lo, hi, out) => unary((v) => (v < lo ? lo : Math.min(v, hi)))(x, out),
  sum: reduce(0, (acc, x) => acc + x),
  max: reduce(-Infinity, nanMax),
  min: reduce(Infinity, nanMin),
  argmax: argReduce((v, best) => v > best),
  argmin: argReduce((v, best) => v < best),
  matmul,
  copy,
  gather,
  scatterAdd,
  softmax: softmaxRows(false),
  logSoftmax: softmaxRows(true),
  batchNormForward,
  batchNormBackward,
  reluBackward,
  softmaxCrossEntropy,
  softmaxCrossEntropyBackward,
  sgdUpdate,
  adamUpdate,
  rmspropUpdate,
  adagradUpdate,
  im2col,
  col2im,
  // The tiled attention loops live beside their op (src/nn/attention-kernels.ts); they are plain loops over
  // Float32Arrays, importing nothing from the tensor layer.
  attentionForward,
  attentionBackward,
};

registerBackend(
  {
    name: 'js',
    priority: 0,
    alloc: allocStorage,
    describe: () => ({ kind: 'TypeScript reference', threads: 1 }),
  },
  jsKernels,
);
