/**
 * Public tensor ops. Each op validates its arguments once, here (never in the kernels), allocates its output
 * through the active backend, calls the backend's kernel, and records a graph node when gradients are needed.
 * Shape legend in docs: N batch, D features, T time, C channels/classes, M×K @ K×N for matmul.
 */
import { bumpVersion, isGradEnabled, type Node, versionOf } from '../autograd/engine.js';
import type { CustomBackward, Primitive, PrimitiveCtx } from '../autograd/grad.js';
import {
  activeBackend,
  type BinaryOp,
  type CompareOp,
  kernels,
  type MatmulEpilogue,
  type UnaryOp,
  type View,
} from '../backend/backend.js';
import { checkOptions, fmtShape, kindOf, optionKeys, ShapeError, StateError, ValueError } from '../errors.js';
import { autocastPrecision, type Precision, packBits, roundInPlace, unpackBits } from './autocast.js';
import { checkDtype, type DType, promote, type TypedArray } from './dtype.js';
import {
  broadcastShapes,
  contiguousStrides,
  dims,
  isContiguous,
  normDim,
  normDims,
  numel,
  resolveShape,
  sameShape,
} from './shape.js';
import { Tensor, type TensorOrScalar } from './tensor.js';

// ---- plumbing ---------------------------------------------------------------------------------------------

/**
 * `t`'s values in storage the active backend keeps for long-lived tensors (parameters, gradients, optimizer
 * state: see Backend.allocLongLived), as a new contiguous float32 tensor; `t` itself where the backend has no
 * such storage. Outside autograd.
 */
export function longLived(t: Tensor): Tensor {
  const alloc = activeBackend().allocLongLived;
  if (!alloc || t.dtype !== 'float32') return t;
  const out = new Tensor(alloc(t.size), 'float32', [...t.shape]);
  kernels().copy(t, out);
  return out;
}

/**
 * Move a parameter's values into long-lived storage in place (see `longLived`), keeping the tensor object, so
 * code holding it still sees the parameter. Only a tensor that owns its whole storage moves; a view of
 * another tensor's storage stays where it is (moving it would cut it off from that tensor).
 */
export function moveToLongLived(t: Tensor): void {
  const alloc = activeBackend().allocLongLived;
  if (!alloc || t.dtype !== 'float32' || t.offset !== 0 || t.data.length !== t.size) return;
  if (!isContiguous(t.shape, t.strides)) return;
  const moved = alloc(t.size);
  moved.set(t.data as Float32Array);
  // Tensor.data is readonly to users; this is the one place storage is replaced.
  (t as { data: TypedArray }).data = moved;
}

/** Zeros in long-lived storage (optimizer state; see `longLived`). */
export function zerosLongLived(shape: readonly number[]): Tensor {
  const alloc = activeBackend().allocLongLived;
  return alloc ? new Tensor(alloc(numel(shape)), 'float32', [...shape]) : empty(shape);
}

/** A fresh contiguous tensor of zeros whose storage comes from the active backend. */
export function empty(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  return fresh(shape, dtype, true);
}

/**
 * A fresh contiguous tensor with unspecified contents, for an op whose kernel writes every element of it
 * (skips zeroing a large buffer; see allocStorage). Tests poison it with NaN, so a partial write shows.
 */
export function uninitialized(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  return fresh(shape, dtype, false);
}

function fresh(shape: readonly number[], dtype: DType, zeroed: boolean): Tensor {
  const n = numel(shape);
  allocated.bytes += n * (dtype === 'bool' ? 1 : 4);
  return new Tensor(activeBackend().alloc(dtype, n, zeroed), dtype, dims(shape));
}

/** Bytes of tensor storage allocated since the process started: the profiler's per-step memory measure. */
export const allocated = { bytes: 0 };

function scalar(v: number | boolean, dtype: DType): Tensor {
  const t = empty([], dtype);
  t.data[0] = Number(v);
  return t;
}

/** Turn a number operand into a 0-d tensor of a compatible dtype (int stays int, like PyTorch's weak scalars). */
function lift(op: string, x: TensorOrScalar, other: Tensor): Tensor {
  if (x instanceof Tensor) return x;
  // A typo (model.bais: undefined), an array or a string would otherwise become NaN or be coerced.
  if (typeof x !== 'number' && typeof x !== 'boolean') {
    const got = kindOf(x);
    const hint = Array.isArray(x) ? ' (make it a tensor: tensor([...]))' : '';
    throw new ValueError(op, `operands must be tensors, numbers or booleans (got ${got})${hint}`);
  }
  const dt: DType =
    typeof x === 'boolean' ? 'bool' : Number.isInteger(x) && other.dtype !== 'float32' ? 'int32' : 'float32';
  return scalar(x, other.dtype === 'float32' ? 'float32' : dt);
}

/** Record the node that produced `out` if any input needs a gradient. Returns `out`. */
function record<P extends Primitive>(prim: P, inputs: Tensor[], out: Tensor, ctx: PrimitiveCtx[P]): Tensor {
  if (isGradEnabled() && inputs.some((x) => x.requiresGrad)) {
    out.requiresGrad = true;
    const precision = autocastPrecision();
    // Under 16-bit autocast the activations this node keeps for backward are stored in 16 bits (packed).
    const kept = precision === 'fp32' ? inputs : inputs.map((x) => packActivation(x, precision));
    const versions = READS_NO_VALUES.has(prim) ? null : [...kept.map(versionOf), versionOf(out)];
    out._node = { prim, inputs: kept, ctx, released: false, versions } as Node;
  }
  return out;
}

/** Primitives whose gradient rule reads no input or output values: in-place writes cannot stale them. */
const READS_NO_VALUES = new Set<Primitive>([
  'neg',
  'sign',
  'add',
  'sub',
  'sum',
  'reshape',
  'permute',
  'expand',
  'slice',
  'contiguous',
  'cat',
  'indexSelect',
]);

/** Activations smaller than this stay float32: packing costs a pass and saves little. */
const MIN_PACKED = 1024;
const packedOf = new WeakMap<Tensor, Tensor>();
/**
 * 16-bit copies of whole storages, per precision: the views of one storage share one copy. null: a storage
 * with a finite value past fp16's range, kept in float32 (packed, it would come back Infinity: exp(12)'s
 * gradient was Infinity).
 */
const packedStorage = new WeakMap<object, Partial<Record<Precision, Uint16Array | null>>>();

/**
 * The stand-in a graph node keeps for an activation under 16-bit autocast: same shape, strides and offset,
 * autograd identity (node, requiresGrad), one cached stand-in per activation, with its storage's values in 16
 * bits and no float32 storage, so the activation's float32 buffer is freed once the forward pass is done with
 * it. Views of one storage (a conv's output and its reshape, the ReLU after it) share one 16-bit copy, as in
 * float32 they share the buffer: packed per view, a CNN's graph held more than in float32. Leaves
 * (parameters, input batches) are kept as they are. `unpack` restores float32 values for the backward pass.
 */
export function packActivation(x: Tensor, precision: Precision = autocastPrecision()): Tensor {
  if (precision === 'fp32' || x.isLeaf || x.dtype !== 'float32' || x.size < MIN_PACKED || x.packed) return x;
  let p = packedOf.get(x);
  if (!p) {
    let copies = packedStorage.get(x.data);
    if (!copies) packedStorage.set(x.data, (copies = {}));
    if (copies[precision] === undefined)
      copies[precision] = packBits(x.data as Float32Array, precision, true);
    const bits = copies[precision];
    if (!bits) return x;
    p = new Tensor(new Float32Array(0), 'float32', x.shape, x.strides, x.offset, x.requiresGrad);
    p._node = x._node;
    p.packed = { precision, bits };
    packedOf.set(x, p);
  }
  return p;
}

/** float32 values of a packed activation (a fresh storage, viewed as the activation was; no graph). */
export function unpack(x: Tensor): Tensor {
  if (!x.packed) return x;
  const data = uninitialized([x.packed.bits.length]).data as Float32Array;
  unpackBits(x.packed.bits, x.packed.precision, data);
  return new Tensor(data, 'float32', [...x.shape], [...x.strides], x.offset);
}

/** A view sharing x's storage (no copy). */
function viewOf(x: Tensor, shape: readonly number[], strides: readonly number[], offset = x.offset): Tensor {
  return new Tensor(x.data, x.dtype, dims(shape), dims(strides), offset);
}

function broadcastView(x: View, shape: readonly number[]): View {
  const lead = shape.length - x.shape.length;
  const strides = shape.map((d, i) => {
    const j = i - lead;
    if (j < 0) return 0;
    return x.shape[j] === 1 && d !== 1 ? 0 : x.strides[j]!;
  });
  return { data: x.data, dtype: x.dtype, shape, strides, offset: x.offset };
}

function requireFloat(op: string, x: Tensor): void {
  if (!(x instanceof Tensor)) {
    throw new ValueError(op, `expected a Tensor (got ${kindOf(x)})`);
  }
  if (x.dtype !== 'float32') throw new ValueError(op, `expected a float32 tensor, got ${x.dtype}`);
}

// ---- elementwise ------------------------------------------------------------------------------------------

/** Unary ops that keep an int tensor int (PyTorch's), by the int value: the rest compute in float32. */
const INT_UNARY: Partial<Record<UnaryOp, (v: number) => number>> = {
  neg: (v) => -v | 0, // wraps at -2^31, as two's complement does
  abs: (v) => Math.abs(v) | 0,
  sign: Math.sign,
  relu: (v) => Math.max(v, 0),
};

/** f over the values of an int32 tensor, into a new int32 tensor (no graph: ints carry no gradient). */
function intMap(x: Tensor, f: (v: number) => number): Tensor {
  const src = contiguous(x).data as Int32Array;
  const out = uninitialized(x.shape, 'int32');
  const o = out.data as Int32Array;
  for (let i = 0; i < o.length; i++) o[i] = f(src[i]!);
  return out;
}

function unaryOp(op: UnaryOp, x: Tensor): Tensor {
  if (op === 'neg' && x.dtype === 'bool')
    throw new ValueError(
      'neg',
      'negation of a bool tensor is not supported: invert a mask with eq(mask, false)',
    );
  // The sign of a bool is itself (PyTorch keeps bool), not a float.
  if (op === 'sign' && x.dtype === 'bool') return contiguous(x, true);
  const intOp = x.dtype === 'int32' ? INT_UNARY[op] : undefined;
  if (intOp) return intMap(x, intOp);
  const xf = x.dtype === 'float32' ? x : cast(x, 'float32');
  const out = uninitialized(x.shape);
  kernels()[op](xf, out.data as Float32Array);
  return record(op, [x], out, null);
}

/** -x */
export const neg = (x: Tensor) => unaryOp('neg', x);
/** e^x */
export const exp = (x: Tensor) => unaryOp('exp', x);
/** Natural log; log(0) = -Infinity, log(-1) = NaN (IEEE). */
export const log = (x: Tensor) => unaryOp('log', x);
export const sqrt = (x: Tensor) => unaryOp('sqrt', x);
export const abs = (x: Tensor) => unaryOp('abs', x);
export const tanh = (x: Tensor) => unaryOp('tanh', x);
/** 1/(1+e^-x), evaluated without overflow for any x (±1000 included). */
export const sigmoid = (x: Tensor) => unaryOp('sigmoid', x);
/** max(x, 0), elementwise (the seed's relu_batch). */
export const relu = (x: Tensor) => unaryOp('relu', x);
export const erf = (x: Tensor) => unaryOp('erf', x);
export const sign = (x: Tensor) => unaryOp('sign', x);

function binaryOp(op: BinaryOp, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (!(a instanceof Tensor) && !(b instanceof Tensor))
    throw new ValueError(op, 'expected at least one tensor operand');
  const ta = a instanceof Tensor ? a : lift(op, a, b as Tensor);
  const tb = b instanceof Tensor ? b : lift(op, b, ta);
  const shape = broadcastShapes(op, ta.shape, tb.shape);
  // PyTorch refuses − with a bool operand of either kind, a tensor or a scalar; invert a mask with eq(mask, false).
  // The operands as given count too: a boolean scalar beside a float tensor lifts to float.
  if (
    op === 'sub' &&
    (ta.dtype === 'bool' || tb.dtype === 'bool' || typeof a === 'boolean' || typeof b === 'boolean')
  ) {
    throw new ValueError(
      'sub',
      "subtraction with a bool tensor is not supported: ne(a, b) gives two masks' xor, eq(mask, false) inverts one, mask.float() counts",
    );
  }
  if (ta.dtype === 'bool' && tb.dtype === 'bool' && op !== 'div' && op !== 'pow') {
    // PyTorch: + and maximum of bools are or, × and minimum are and (− is refused above).
    return ne(binaryOp(op, cast(ta, 'int32'), cast(tb, 'int32')), 0);
  }
  let dtype = promote(ta.dtype, tb.dtype);
  if (op === 'pow' && dtype === 'int32') return intPow(ta, tb, shape);
  // True division gives floats; a bool with an int is done as ints.
  if (op === 'div' || op === 'pow' || dtype === 'bool')
    dtype = op === 'div' || op === 'pow' ? 'float32' : 'int32';
  const out = uninitialized(shape, dtype);
  kernels()[op](broadcastView(ta, shape), broadcastView(tb, shape), out.data);
  return record(op, [ta, tb], out, null);
}

/**
 * pow of ints is an int, exact and wrapping at 32 bits as PyTorch's wraps at 64; a negative exponent is
 * refused, as in PyTorch (it has no int result).
 */
function intPow(a: Tensor, b: Tensor, shape: number[]): Tensor {
  const values = (t: Tensor) => {
    const i = asInt(t);
    return contiguous(sameShape(i.shape, shape) ? i : expand(i, shape)).data as Int32Array;
  };
  const x = values(a);
  const e = values(b);
  const out = uninitialized(shape, 'int32');
  const o = out.data as Int32Array;
  for (let i = 0; i < o.length; i++) {
    if (e[i]! < 0)
      throw new ValueError(
        'pow',
        `integers to negative integer powers are not allowed (got ${x[i]}^${e[i]})`,
      );
    // Square-and-multiply with 32-bit wrapping products (Math.imul): exact where it fits, wrapped where not.
    let r = 1;
    let base = x[i]!;
    for (let k = e[i]!; k > 0; k >>= 1) {
      if (k & 1) r = Math.imul(r, base);
      base = Math.imul(base, base);
    }
    o[i] = r;
  }
  return out;
}

/** x as int32 (a bool or int operand of intPow). */
const asInt = (x: Tensor) => (x.dtype === 'int32' ? x : cast(x, 'int32'));

/** a + b with NumPy broadcasting. @example add(x, bias) // (N,D) + (D) -> (N,D) */
export const add = (a: TensorOrScalar, b: TensorOrScalar) => binaryOp('add', a, b);
export const sub = (a: TensorOrScalar, b: TensorOrScalar) => binaryOp('sub', a, b);
export const mul = (a: TensorOrScalar, b: TensorOrScalar) => binaryOp('mul', a, b);
/** True division (ints give floats). x/0 follows IEEE: ±Infinity or NaN. */
export const div = (a: TensorOrScalar, b: TensorOrScalar) => binaryOp('div', a, b);
export const pow = (a: TensorOrScalar, b: TensorOrScalar) => binaryOp('pow', a, b);
/** Elementwise max; NaN propagates. */
export const maximum = (a: TensorOrScalar, b: TensorOrScalar) => binaryOp('maximum', a, b);
export const minimum = (a: TensorOrScalar, b: TensorOrScalar) => binaryOp('minimum', a, b);

function compareOp(op: CompareOp, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (!(a instanceof Tensor) && !(b instanceof Tensor))
    throw new ValueError(op, 'expected at least one tensor operand');
  const ta = a instanceof Tensor ? a : lift(op, a, b as Tensor);
  const tb = b instanceof Tensor ? b : lift(op, b, ta);
  const shape = broadcastShapes(op, ta.shape, tb.shape);
  const out = uninitialized(shape, 'bool');
  kernels()[op](broadcastView(ta, shape), broadcastView(tb, shape), out.data as Uint8Array);
  return out;
}

/** Elementwise comparisons; they return bool tensors and carry no gradient. */
export const eq = (a: TensorOrScalar, b: TensorOrScalar) => compareOp('eq', a, b);
export const ne = (a: TensorOrScalar, b: TensorOrScalar) => compareOp('ne', a, b);
export const lt = (a: TensorOrScalar, b: TensorOrScalar) => compareOp('lt', a, b);
export const le = (a: TensorOrScalar, b: TensorOrScalar) => compareOp('le', a, b);
export const gt = (a: TensorOrScalar, b: TensorOrScalar) => compareOp('gt', a, b);
export const ge = (a: TensorOrScalar, b: TensorOrScalar) => compareOp('ge', a, b);

/** cond ? a : b, elementwise with broadcasting over all three. */
export function where(cond: Tensor, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (cond.dtype !== 'bool')
    throw new ValueError('where', `condition must be a bool tensor, got ${cond.dtype}`);
  const ta = a instanceof Tensor ? a : lift('where', a, b instanceof Tensor ? b : cond);
  const tb = b instanceof Tensor ? b : lift('where', b, ta);
  const shape = broadcastShapes('where', broadcastShapes('where', cond.shape, ta.shape), tb.shape);
  const dtype = promote(ta.dtype, tb.dtype);
  const out = uninitialized(shape, dtype);
  kernels().where(broadcastView(cond, shape), broadcastView(ta, shape), broadcastView(tb, shape), out.data);
  return record('where', [ta, tb], out, { cond });
}

/** Clamp into [min, max]; either bound may be omitted. The gradient passes where min <= x <= max. */
export function clamp(x: Tensor, min?: number | { min?: number; max?: number }, max?: number): Tensor {
  // clamp(x, { min, max }): PyTorch's keywords as an options object.
  if (typeof min === 'object' && min !== null) {
    checkOptions('clamp', min, ['min', 'max']);
    if (max !== undefined)
      throw new ValueError(
        'clamp',
        'give the bounds as clamp(x, min, max) or clamp(x, { min, max }), not both',
      );
    return clamp(x, min.min, min.max);
  }
  for (const [name, v] of [
    ['min', min],
    ['max', max],
  ] as const) {
    if (v !== undefined && typeof v !== 'number')
      throw new ValueError('clamp', `${name} must be a number (got ${kindOf(v)})`);
  }
  if (min === undefined && max === undefined)
    throw new ValueError('clamp', 'at least one of min and max must be given');
  const lo = min ?? -Infinity;
  const hi = max ?? Infinity;
  // An int tensor with whole bounds stays int (PyTorch's type promotion); a fractional or infinite bound (a
  // Python float) makes it float. An absent bound is no bound.
  const whole = (v: number | undefined) => v === undefined || Number.isInteger(v);
  if (x.dtype === 'int32' && whole(min) && whole(max)) return intMap(x, (v) => Math.min(Math.max(v, lo), hi));
  if (x.dtype !== 'float32') return clamp(cast(x, 'float32'), min, max);
  const out = uninitialized(x.shape);
  // PyTorch's clamp is min(max(x, lo), hi): with lo > hi every value becomes hi, which the kernels'
  // x < lo ? lo : min(x, hi) gives when lo is lowered to hi (the gradient keeps lo: it is 0 everywhere then).
  kernels().clamp(x, Math.min(lo, hi), hi, out.data as Float32Array);
  return record('clamp', [x], out, { lo, hi });
}

// ---- reductions -------------------------------------------------------------------------------------------

/** keepDim as given (a truthy options object or 1 would keep dims silently). */
function checkKeepDim(op: string, keepDim: unknown): void {
  if (typeof keepDim !== 'boolean')
    throw new ValueError(op, `keepDim must be a boolean (got ${typeof keepDim}), e.g. ${op}(1, true)`);
}

function keptShape(shape: readonly number[], axes: readonly number[], keepDim: boolean): number[] {
  return keepDim
    ? shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : shape.filter((_, i) => !axes.includes(i));
}

function reduceOp(
  op: 'sum' | 'max' | 'min',
  x: Tensor,
  dims: number | readonly number[] | undefined,
  keepDim: boolean,
): Tensor {
  checkKeepDim(op, keepDim);
  const axes = normDims(op, dims, x.rank);
  if (op !== 'sum') {
    for (const a of axes) {
      if (x.shape[a] === 0)
        throw new ShapeError(op, `cannot reduce over dim ${a} of size 0 (shape ${fmtShape(x.shape)})`);
    }
  }
  // A sum of bools counts them (int, as PyTorch's int64); their max and min stay bool.
  const dtype: DType = x.dtype === 'bool' && op === 'sum' ? 'int32' : x.dtype;
  const out = empty(keptShape(x.shape, axes, keepDim), dtype);
  kernels()[op](x, axes, out.data);
  return record(op, [x], out, { axes, shape: [...x.shape] });
}

/** Sum over `dims` (all when omitted). @example x.sum(0) // (N,D) -> (D) */
export const sum = (x: Tensor, dims?: number | readonly number[], keepDim = false) =>
  reduceOp('sum', x, dims, keepDim);
/**
 * Max over `dims` (values only; see argmax for indices). Ties share the gradient equally. With a tensor in
 * place of dims, the elementwise maximum (PyTorch's torch.max(a, b)).
 */
export const max = (x: Tensor, dims?: number | readonly number[] | Tensor, keepDim = false) =>
  dims instanceof Tensor ? maximum(x, dims) : reduceOp('max', x, dims, keepDim);
export const min = (x: Tensor, dims?: number | readonly number[] | Tensor, keepDim = false) =>
  dims instanceof Tensor ? minimum(x, dims) : reduceOp('min', x, dims, keepDim);

/** Mean over `dims`. The mean of nothing is NaN, as in PyTorch. */
export function mean(x: Tensor, dims?: number | readonly number[], keepDim = false): Tensor {
  requireFloat('mean', x);
  checkKeepDim('mean', keepDim);
  const axes = normDims('mean', dims, x.rank);
  const n = axes.reduce((acc, a) => acc * x.shape[a]!, 1);
  return div(sum(x, axes, keepDim), n);
}

/** Options of variance and std: Bessel's `correction`, or PyTorch 1.13's `unbiased` (false: correction 0). */
export interface VarianceOptions {
  correction?: number;
  unbiased?: boolean;
  keepDim?: boolean;
}
const VARIANCE_OPTIONS = optionKeys<VarianceOptions>()(['correction', 'unbiased', 'keepDim']);

/**
 * Variance over `dims` with Bessel's `correction` (default 1, unbiased, as torch.var; BatchNorm uses 0).
 */
export function variance(x: Tensor, dims?: number | readonly number[], opts: VarianceOptions = {}): Tensor {
  return varianceOf('var', x, dims, opts);
}

/**
 * Standard deviation: √variance, whose gradient g/(2·std) is set to 0 where std is 0, as PyTorch's
 * std_backward does (through sqrt's rule, a constant row's gradient was ∞·0 = NaN).
 */
export function std(x: Tensor, dims?: number | readonly number[], opts: VarianceOptions = {}): Tensor {
  const v = varianceOf('std', x, dims, opts);
  const y = uninitialized(v.shape);
  kernels().sqrt(v, y.data as Float32Array);
  return customOp('std', [v], y, (g) => [where(eq(y, 0), 0, div(g, mul(y, 2)))]);
}

function varianceOf(
  op: string,
  x: Tensor,
  dims: number | readonly number[] | undefined,
  opts: VarianceOptions,
) {
  requireFloat(op, x);
  checkOptions(op, opts, VARIANCE_OPTIONS);
  const { correction, unbiased, keepDim = false } = opts;
  if (correction !== undefined && unbiased !== undefined)
    throw new ValueError(op, 'give correction or unbiased, not both');
  checkKeepDim(op, keepDim);
  const axes = normDims(op, dims, x.rank);
  const n = axes.reduce((acc, a) => acc * x.shape[a]!, 1);
  const centered = sub(x, mean(x, axes, true));
  return div(
    sum(mul(centered, centered), axes, keepDim),
    Math.max(0, n - (correction ?? (unbiased === false ? 0 : 1))),
  );
}

function argOp(op: 'argmax' | 'argmin', x: Tensor, dim: number | undefined, keepDim: boolean): Tensor {
  checkKeepDim(op, keepDim);
  if (dim === undefined) {
    if (x.size === 0) throw new ShapeError(op, 'cannot take the arg of an empty tensor');
    const flat = argOp(op, reshape(x, [x.size]), 0, false);
    // keepDim without a dim keeps every dim, as size 1 (PyTorch: x.argmax(keepdim=True) is (1, ..., 1)).
    return keepDim
      ? reshape(
          flat,
          x.shape.map(() => 1),
        )
      : flat;
  }
  const axis = normDim(op, dim, x.rank);
  if (x.shape[axis] === 0) throw new ShapeError(op, `cannot reduce over dim ${axis} of size 0`);
  const out = empty(keptShape(x.shape, [axis], keepDim), 'int32');
  kernels()[op](x, axis, out.data as Int32Array);
  return out;
}

/** Index of the max along `dim` (of the flattened tensor when omitted). int32, no gradient. */
export const argmax = (x: Tensor, dim?: number, keepDim = false) => argOp('argmax', x, dim, keepDim);
export const argmin = (x: Tensor, dim?: number, keepDim = false) => argOp('argmin', x, dim, keepDim);

/** log(sum(exp(x))) over dims, computed stably (max subtracted first). */
export function logsumexp(x: Tensor, dims: number | readonly number[], keepDim = false): Tensor {
  checkKeepDim('logsumexp', keepDim);
  const axes = normDims('logsumexp', dims, x.rank);
  // log of an empty sum: -Inf, as PyTorch (max has nothing to reduce there).
  if (axes.some((a) => x.shape[a] === 0)) return add(sum(x, axes, keepDim), -Infinity);
  const m = max(x, axes, true).detach();
  // A row whose max is infinite would give inf - inf = NaN: all -inf gives -inf and any +inf gives +inf, as in
  // PyTorch, when nothing is subtracted there.
  const safe = where(eq(abs(m), Infinity), 0, m);
  const s = add(log(sum(exp(sub(x, safe)), axes, true)), safe);
  return keepDim ? s : reshape(s, keptShape(x.shape, axes, false));
}

function softmaxOp(prim: 'softmax' | 'logSoftmax', x: Tensor, dim: number): Tensor {
  requireFloat(prim, x);
  const d = normDim(prim, dim, x.rank);
  if (x.rank === 0) return softmaxOp(prim, reshape(x, [1]), 0).reshape([]);
  if (d !== x.rank - 1) return transpose(softmaxOp(prim, transpose(x, d, -1), -1), d, -1);
  const xc = contiguous(x);
  const out = uninitialized(x.shape);
  kernels()[prim](xc, out.data as Float32Array);
  return record(prim, [x], out, null);
}

/** Softmax along `dim` (max-subtracted: stable for ±1000). @example logits.softmax(-1) // (N,C) rows sum to 1 */
export const softmax = (x: Tensor, dim = -1) => softmaxOp('softmax', x, dim);
/** log(softmax(x)) along `dim`, computed as x - max - log(sum(exp(x - max))). */
export const logSoftmax = (x: Tensor, dim = -1) => softmaxOp('logSoftmax', x, dim);

// ---- matmul -----------------------------------------------------------------------------------------------

/**
 * Matrix product with batched and broadcast leading dims, as torch.matmul: (..., M, K) @ (..., K, N).
 * 1-D operands are treated as a row (left) or column (right) vector and that dim is removed from the result.
 * @example matmul(x, w.mT) // (N, D_in) @ (D_in, D_out) -> (N, D_out)
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  return matmulWith(a, b);
}

/**
 * relu?(a·b + bias) in one GEMM pass (linear's forward): a and b at least 2-D, bias a dense float32 (N).
 * Outside autograd (the caller records the fused op). Under autocast it is PyTorch's addmm: operands and bias
 * rounded to 16 bits, the product accumulated in float32 plus the bias, and that sum rounded once.
 */
export function matmulFused(a: Tensor, b: Tensor, epilogue: MatmulEpilogue): Tensor {
  const precision = autocastPrecision();
  if (precision !== 'fp32' && epilogue.bias) {
    const bias = Float32Array.from(epilogue.bias);
    roundInPlace(bias, precision);
    epilogue = { ...epilogue, bias };
  }
  return matmulWith(a, b, epilogue);
}

function matmulWith(a: Tensor, b: Tensor, epilogue?: MatmulEpilogue, into?: Tensor): Tensor {
  if (a.rank === 0 || b.rank === 0) {
    throw new ShapeError(
      'matmul',
      `both arguments need at least 1 dimension (got ${fmtShape(a.shape)} and ${fmtShape(b.shape)})`,
    );
  }
  requireFloat('matmul', a);
  requireFloat('matmul', b);
  if (a.rank === 1 && b.rank === 1) return reshape(matmul(unsqueeze(a, 0), unsqueeze(b, -1)), []);
  if (a.rank === 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.rank === 1) return squeeze(matmul(a, unsqueeze(b, -1)), -1);
  const [M, K] = a.shape.slice(-2) as [number, number];
  const [K2, N] = b.shape.slice(-2) as [number, number];
  if (K !== K2)
    throw new ShapeError(
      'matmul',
      `cannot multiply ${fmtShape(a.shape)} by ${fmtShape(b.shape)}: inner dimensions ${K} and ${K2} differ`,
    );
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = into ?? uninitialized([...batch, M, N]);
  const precision = autocastPrecision();
  // Under autocast the GEMM sees 16-bit operands and gives a 16-bit result; the graph keeps the float32 inputs.
  const ra = precision === 'fp32' ? a : rounded(a, precision);
  const rb = precision === 'fp32' ? b : rounded(b, precision);
  // Two matrices need no broadcast views (the common case, where a small matmul's overhead is the cost).
  const plain = batch.length === 0 && a.rank === 2 && b.rank === 2;
  kernels().matmul(
    plain ? ra : broadcastView(ra, [...batch, M, K]),
    plain ? rb : broadcastView(rb, [...batch, K, N]),
    out.data as Float32Array,
    epilogue,
  );
  if (precision !== 'fp32') roundInPlace(out.data as Float32Array, precision);
  return record('matmul', [a, b], out, null);
}

/**
 * a (M,K) · b (K,N) written straight into `grad`, a leaf's zeroed `.grad` of shape (M,N), instead of into a new
 * tensor the engine would then copy there (linear's dW: the largest gradient of a step). Returns `grad`, or
 * null when `grad` is not known to be zero (the caller then computes the product the usual way). Float32,
 * outside autograd.
 */
export function matmulIntoZeroedGrad(a: Tensor, b: Tensor, grad: Tensor): Tensor | null {
  if (
    autocastPrecision() !== 'fp32' ||
    !zeroedGrads.has(grad.data) ||
    a.rank !== 2 ||
    b.rank !== 2 ||
    grad.dtype !== 'float32' ||
    grad.offset !== 0 ||
    !isContiguous(grad.shape, grad.strides) ||
    grad.shape[0] !== a.shape[0] ||
    grad.shape[1] !== b.shape[1]
  ) {
    return null;
  }
  zeroedGrads.delete(grad.data);
  matmulWith(a, b, undefined, grad);
  return grad;
}

/**
 * t's values rounded to `precision`, in a new tensor. A view over all of its storage (a weight's transpose
 * W.mT, as linear reads it) is copied whole and keeps its strides: a strided gather into row-major order was
 * most of an fp16 step's cost at small batches.
 */
function rounded(t: Tensor, precision: Precision): Tensor {
  if (t.offset === 0 && t.data.length === t.size && t.dtype === 'float32') {
    const data = uninitialized([t.size]).data as Float32Array;
    data.set(t.data as Float32Array);
    roundInPlace(data, precision);
    return new Tensor(data, 'float32', [...t.shape], [...t.strides], 0);
  }
  const c = uninitialized(t.shape);
  kernels().copy(t, c);
  roundInPlace(c.data as Float32Array, precision);
  return c;
}

// ---- views ------------------------------------------------------------------------------------------------

/**
 * Strides that show x's elements, in row-major order, with `shape`; null when no strides can (a copy is
 * needed). PyTorch's computeStride: x's dims are cut into chunks that are contiguous among themselves, and
 * each chunk must split into whole dims of the new shape. So a (2,3,4) tensor sliced to (2,3,2) on its last
 * dim views as (6,2), and a transposed matrix views only with its dims kept apart.
 */
function viewStrides(x: Tensor, shape: readonly number[]): number[] | null {
  if (isContiguous(x.shape, x.strides) || x.size === 0 || x.rank === 0) return contiguousStrides(shape);
  const out = new Array<number>(shape.length).fill(0);
  let v = shape.length - 1;
  let base = x.strides[x.rank - 1]!; // stride of the innermost dim of the current chunk
  let chunk = 1; // elements in x's current chunk
  let got = 1; // elements of the new shape's dims assigned to it
  for (let d = x.rank - 1; d >= 0; d--) {
    chunk *= x.shape[d]!;
    // The chunk ends at the outermost dim, or where the next dim out does not continue it (size-1 dims do).
    if (d === 0 || (x.shape[d - 1] !== 1 && x.strides[d - 1] !== chunk * base)) {
      while (v >= 0 && (got < chunk || shape[v] === 1)) {
        out[v] = got * base;
        got *= shape[v]!;
        v--;
      }
      if (got !== chunk) return null;
      if (d > 0) {
        base = x.strides[d - 1]!;
        chunk = 1;
        got = 1;
      }
    }
  }
  return v === -1 ? out : null;
}

/** A view with a new shape (one dim may be -1). Throws if the layout needs a copy: use `reshape`. */
export function view(x: Tensor, shape: readonly number[]): Tensor {
  const s = resolveShape('view', shape, x.size);
  if (numel(s) !== x.size)
    throw new ShapeError('view', `shape ${fmtShape(shape)} is invalid for input of size ${x.size}`);
  const st = viewStrides(x, s);
  if (!st) {
    throw new ShapeError(
      'view',
      `shape ${fmtShape(s)} is not compatible with input ${fmtShape(x.shape)} of strides ` +
        `${fmtShape(x.strides)} (a dim would span two non-contiguous parts); use reshape (which copies)`,
    );
  }
  return record('reshape', [x], viewOf(x, s, st), { shape: [...x.shape] });
}

/** A tensor with a new shape: a view when the layout allows, a copy otherwise. One dim may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = resolveShape('reshape', shape, x.size);
  if (numel(s) !== x.size)
    throw new ShapeError('reshape', `shape ${fmtShape(shape)} is invalid for input of size ${x.size}`);
  const st = viewStrides(x, s);
  const src = st ? x : contiguous(x);
  return record('reshape', [src], viewOf(src, s, st ?? contiguousStrides(s)), { shape: [...src.shape] });
}

/** Merge dims start..end into one. @example images.flatten(1) // (N,C,H,W) -> (N, C*H*W) */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.rank === 0) return reshape(x, [1]);
  const s = normDim('flatten', startDim, x.rank);
  const e = normDim('flatten', endDim, x.rank);
  if (s > e) throw new ValueError('flatten', `start_dim ${startDim} cannot come after end_dim ${endDim}`);
  const merged = x.shape.slice(s, e + 1).reduce((p, d) => p * d, 1);
  return reshape(x, [...x.shape.slice(0, s), merged, ...x.shape.slice(e + 1)]);
}

/** Remove `dim` if its size is 1 (all size-1 dims when omitted); a dim of another size is left alone. */
export function squeeze(x: Tensor, dim?: number): Tensor {
  const drop =
    dim === undefined
      ? x.shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0)
      : [normDim('squeeze', dim, x.rank)];
  const keep = x.shape.map((_, i) => i).filter((i) => !(drop.includes(i) && x.shape[i] === 1));
  const shape = keep.map((i) => x.shape[i]!);
  return record(
    'reshape',
    [x],
    viewOf(
      x,
      shape,
      keep.map((i) => x.strides[i]!),
    ),
    { shape: [...x.shape] },
  );
}

/** Insert a size-1 dim at `dim` (the seed's `np.newaxis`). @example img.unsqueeze(0) // (28,28) -> (1,28,28) */
export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normDim('unsqueeze', dim, x.rank + 1);
  const shape = [...x.shape];
  const strides = [...x.strides];
  shape.splice(d, 0, 1);
  strides.splice(d, 0, d < x.rank ? x.strides[d]! * x.shape[d]! : 1);
  return record('reshape', [x], viewOf(x, shape, strides), { shape: [...x.shape] });
}

/** Reorder dims (a view). @example x.permute(0, 2, 3, 1) // NCHW -> NHWC */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank) {
    throw new ShapeError(
      'permute',
      `number of dims don't match: permutation has ${perm.length}, tensor has ${x.rank} (${fmtShape(x.shape)})`,
    );
  }
  const p = perm.map((d) => normDim('permute', d, x.rank));
  if (new Set(p).size !== p.length)
    throw new ValueError('permute', `repeated dim in permutation ${fmtShape(perm)}`);
  const out = viewOf(
    x,
    p.map((d) => x.shape[d]!),
    p.map((d) => x.strides[d]!),
  );
  return record('permute', [x], out, { perm: p });
}

/** Swap two dims (a view). */
export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  if (x.rank < 2 && d0 === -2 && d1 === -1) return x;
  const a = normDim('transpose', d0, x.rank);
  const b = normDim('transpose', d1, x.rank);
  const perm = x.shape.map((_, i) => (i === a ? b : i === b ? a : i));
  return permute(x, perm);
}

/** Broadcast to `shape` without copying (stride 0 on expanded dims); -1 keeps a dim. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.length < x.rank) {
    throw new ShapeError(
      'expand',
      `the number of sizes provided (${shape.length}) must be >= the number of dims (${x.rank})`,
    );
  }
  const lead = shape.length - x.rank;
  const target = shape.map((d, i) => (d === -1 && i >= lead ? x.shape[i - lead]! : d));
  target.forEach((d, i) => {
    const src = i >= lead ? x.shape[i - lead]! : 1;
    if (!Number.isInteger(d) || d < 0 || (src !== 1 && src !== d)) {
      throw new ShapeError(
        'expand',
        `cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)} (dim ${i}: ${src} to ${d})`,
      );
    }
  });
  const v = broadcastView(x, target);
  return record('expand', [x], viewOf(x, target, v.strides), { shape: [...x.shape] });
}

/**
 * normDim for ops that index into a dim: a 0-d tensor has none (PyTorch: "cannot be applied to a 0-dim
 * tensor"); normDim alone takes dim 0 of a 0-d tensor, whose size is then undefined.
 */
function realDim(op: string, dim: number, x: Tensor): number {
  if (x.rank === 0) throw new ShapeError(op, 'cannot be applied to a 0-d tensor (reshape it to [1] first)');
  return normDim(op, dim, x.rank);
}

/**
 * Elements start..end (exclusive) step `step` of `dim`, as a view. Negative indices count from the end and
 * out-of-range bounds are clamped, as in Python slicing.
 * @example x.slice(0, 0, 32) // the first 32 rows of a batch
 */
export function slice(x: Tensor, dim: number, start = 0, end?: number, step = 1): Tensor {
  const d = realDim('slice', dim, x);
  if (!Number.isInteger(step) || step <= 0)
    throw new ValueError('slice', `step must be a positive integer (got ${step})`);
  if (!Number.isInteger(start) || (end !== undefined && !Number.isInteger(end)))
    throw new ValueError('slice', `start and end must be integers (got ${start} and ${end})`);
  const n = x.shape[d]!;
  const norm = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = norm(start);
  const e = norm(end ?? n);
  const len = e > s ? Math.ceil((e - s) / step) : 0;
  const shape = x.shape.map((v, i) => (i === d ? len : v));
  const strides = x.strides.map((v, i) => (i === d ? v * step : v));
  const out = viewOf(x, shape, strides, x.offset + (len > 0 ? s * x.strides[d]! : 0));
  return record('slice', [x], out, { shape: [...x.shape], dim: d, start: s, step });
}

/**
 * `length` entries of `dim` from `start` (negative counts from the end), as a view; unlike `slice`, the range
 * must lie inside the dim (PyTorch's narrow).
 */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const d = realDim('narrow', dim, x);
  const n = x.shape[d]!;
  if (!Number.isInteger(start) || start < -n || start > n)
    throw new ValueError('narrow', `start ${start} is out of range for dimension ${d} with size ${n}`);
  if (!Number.isInteger(length) || length < 0)
    throw new ValueError('narrow', `length must be a non-negative integer (got ${length})`);
  const s = start < 0 ? start + n : start;
  if (s + length > n)
    throw new ValueError('narrow', `start ${start} + length ${length} exceeds dimension ${d} of size ${n}`);
  return slice(x, d, s, s + length);
}

/** The sub-tensor at `index` of `dim`, that dim removed. */
export function select(x: Tensor, dim: number, index: number): Tensor {
  const d = realDim('select', dim, x);
  const n = x.shape[d]!;
  if (!Number.isInteger(index) || index < -n || index >= n) {
    throw new ValueError('select', `index ${index} is out of bounds for dimension ${d} with size ${n}`);
  }
  return squeeze(slice(x, d, index < 0 ? index + n : index, (index < 0 ? index + n : index) + 1), d);
}

// ---- copies -----------------------------------------------------------------------------------------------

/** x laid out row-major: x itself when it already is (and `force` is false), else a copy. */
export function contiguous(x: Tensor, force = false): Tensor {
  if (!force && x.offset === 0 && isContiguous(x.shape, x.strides) && x.data.length === x.size) return x;
  const out = uninitialized(x.shape, x.dtype);
  kernels().copy(x, out);
  return record('contiguous', [x], out, null);
}

/** Convert to another dtype (float to int truncates toward zero). Only float-to-float carries a gradient. */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  checkDtype('to', dtype);
  const out = uninitialized(x.shape, dtype);
  kernels().copy(x, out);
  return out;
}

/**
 * Storage of gradients zeroed by `zeroGradInPlace` and not written since: the next accumulation into one
 * copies the gradient instead of adding it to zeros (one pass over the buffer instead of reading two). Keyed
 * by storage, so a write through `assign` (copy_, fill_, zero_) into any view of a gradient (`g.narrow(...)
 * .fill_(1)`) counts; a write into the typed array itself (`g.data[i] = v`) is not seen.
 */
const zeroedGrads = new WeakSet<object>();

/** Zero a `.grad` in place and remember it is zero (optimizers' and modules' `zeroGrad`). */
export function zeroGradInPlace(grad: Tensor): void {
  assign(grad, 0);
  // Only a gradient that is all of its storage: a view (a slice of a flat gradient buffer) leaves the rest.
  if (grad.data.length === grad.size) zeroedGrads.add(grad.data);
}

/** zeroGrad for one parameter: its gradient zeroed in place, or dropped (`setToNone`). */
export function clearGrad(p: Tensor, setToNone: boolean): void {
  if (typeof setToNone !== 'boolean')
    throw new ValueError('zeroGrad', `setToNone must be a boolean (got ${typeof setToNone})`);
  if (!p.grad) return;
  if (setToNone) p.grad = null;
  else zeroGradInPlace(p.grad);
}

/**
 * In-place arithmetic (add_, mul_, ...) outside recording only, where a tensor requires grad: PyTorch refuses it
 * for a leaf and rewrites history for a non-leaf, which this graph does not (update parameters inside noGrad).
 */
export function checkInPlace(op: string, dst: Tensor, other: TensorOrScalar): void {
  if (isGradEnabled() && (dst.requiresGrad || (other instanceof Tensor && other.requiresGrad)))
    throw new StateError(
      op,
      'in-place arithmetic on tensors that require grad while recording (the graph would lose it): wrap it in noGrad(() => ...), or use the out-of-place op',
    );
}

/**
 * An in-place result must have the target's shape and dtype: `int += 0.5` is refused as PyTorch's "result type
 * Float can't be cast to Int", and the target is never broadcast.
 */
export function checkInPlaceResult(op: string, dst: Tensor, result: Tensor): void {
  if (result.dtype !== dst.dtype)
    throw new ValueError(
      op,
      `result type ${result.dtype} can't be cast to the ${dst.dtype} tensor it would be written into`,
    );
  if (!sameShape(result.shape, dst.shape))
    throw new ShapeError(
      op,
      `output with shape ${fmtShape(dst.shape)} doesn't match the broadcast shape ${fmtShape(result.shape)}`,
    );
}

/** Write `src` (broadcast) into `dst`'s storage, outside autograd. Used by in-place methods. */
export function assign(dst: Tensor, src: TensorOrScalar): void {
  zeroedGrads.delete(dst.data);
  bumpVersion(dst);
  const s = src instanceof Tensor ? src : scalar(src as number, dst.dtype);
  broadcastShapes('copy_', s.shape, dst.shape);
  if (s.rank > dst.rank || s.shape.some((d, i) => d !== 1 && d !== dst.shape[dst.rank - s.rank + i])) {
    throw new ShapeError('copy_', `cannot copy ${fmtShape(s.shape)} into ${fmtShape(dst.shape)}`);
  }
  kernels().copy(broadcastView(s, dst.shape), dst);
}

/** g where x > 0, else 0: ReLU's gradient in one kernel (used by the gradient table). */
export function reluGrad(x: Tensor, g: Tensor): Tensor {
  const out = uninitialized(g.shape);
  kernels().reluBackward(broadcastView(x, g.shape), g, out.data as Float32Array);
  return out;
}

/** dst += src (broadcast to dst), in place and outside autograd: gradient accumulation. dst is dense. */
export function addInto(dst: Tensor, src: Tensor): void {
  broadcastShapes('addInto', src.shape, dst.shape);
  bumpVersion(dst);
  if (zeroedGrads.delete(dst.data)) kernels().copy(broadcastView(src, dst.shape), dst);
  else kernels().add(dst, broadcastView(src, dst.shape), dst.data);
}

/** A non-empty list of tensors for cat/stack: cat(a, b) (PyTorch takes a tuple) is refused by name. */
function checkTensorList(op: string, tensors: unknown): void {
  if (!Array.isArray(tensors) || tensors.some((t) => !(t instanceof Tensor))) {
    const got =
      tensors instanceof Tensor
        ? 'a Tensor'
        : Array.isArray(tensors)
          ? 'an array with a non-Tensor'
          : typeof tensors;
    throw new ValueError(op, `expected an array of tensors (got ${got}): ${op}([a, b], dim)`);
  }
  if (tensors.length === 0) throw new ValueError(op, 'expected a non-empty list of tensors');
}

/** Concatenate along `dim`; all other dims must match. @example cat([b1, b2], 0) // (32,784)+(32,784) -> (64,784) */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  checkTensorList('cat', tensors);
  const first = tensors[0]!;
  const d = realDim('cat', dim, first);
  tensors.forEach((t, i) => {
    if (t.rank !== first.rank || t.shape.some((s, j) => j !== d && s !== first.shape[j])) {
      throw new ShapeError(
        'cat',
        `sizes of tensors must match except in dimension ${d}: tensor 0 is ${fmtShape(first.shape)}, tensor ${i} is ${fmtShape(t.shape)}`,
      );
    }
  });
  const dtype = tensors.map((t) => t.dtype).reduce(promote);
  const sizes = tensors.map((t) => t.shape[d]!);
  const shape = first.shape.map((s, j) => (j === d ? sizes.reduce((a, b) => a + b, 0) : s));
  const out = uninitialized(shape, dtype);
  let at = 0;
  for (const t of tensors) {
    const part = viewOf(out, t.shape, out.strides, at * out.strides[d]!);
    kernels().copy(t, part);
    at += t.shape[d]!;
  }
  return record('cat', [...tensors], out, { dim: d, sizes });
}

/** Stack equal-shaped tensors along a new dim. @example stack(samples) // N × (784) -> (N, 784) */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  checkTensorList('stack', tensors);
  const s0 = tensors[0]!.shape;
  tensors.forEach((t, i) => {
    if (!sameShape(t.shape, s0)) {
      throw new ShapeError(
        'stack',
        `stack expects each tensor to be equal size, but got ${fmtShape(s0)} at entry 0 and ${fmtShape(t.shape)} at entry ${i}`,
      );
    }
  });
  const d = normDim('stack', dim, s0.length + 1);
  return cat(
    tensors.map((t) => unsqueeze(t, d)),
    d,
  );
}

function toIndex(op: string, index: Tensor | Int32Array | readonly number[], size: number): Int32Array {
  let idx: Int32Array;
  if (index instanceof Tensor) {
    // A bool mask is not a list of indices (PyTorch: "Expected dtype int32 or int64 for index").
    if (index.rank > 1 || index.dtype !== 'int32') {
      throw new ValueError(
        op,
        `index must be a 1-D integer tensor (got ${index.dtype} ${fmtShape(index.shape)})`,
      );
    }
    idx = Int32Array.from(contiguous(index).data);
  } else idx = Int32Array.from(index);
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i]!;
    if (v < -size || v >= size)
      throw new ValueError(op, `index ${v} is out of bounds for dimension with size ${size}`);
    if (v < 0) idx[i] = v + size;
  }
  return idx;
}

/**
 * Gather entries of `dim` by an index array: the DataLoader's batch gather.
 * @example indexSelect(X, 0, [3, 1, 4]) // rows 3, 1 and 4 of (N, D) -> (3, D)
 */
export function indexSelect(x: Tensor, dim: number, index: Tensor | Int32Array | readonly number[]): Tensor {
  const d = realDim('indexSelect', dim, x);
  const idx = toIndex('indexSelect', index, x.shape[d]!);
  // Not x.shape.map(...): in optimized code idx.length is a double, and the mapped array would hold it.
  const shape = [...x.shape];
  shape[d] = idx.length;
  const out = uninitialized(shape, x.dtype);
  kernels().gather(x, d, idx, out.data);
  return record('indexSelect', [x], out, { dim: d, index: idx, shape: [...x.shape] });
}

/**
 * Record a fused op whose gradient is an analytic formula (PyTorch's autograd.Function). `out` was computed
 * by the op's own kernel; `backward(g, needs)` returns one gradient per input (null where not needed). It runs
 * with gradient recording off.
 * @example customOp('batchNorm', [x, weight, bias], y, (g, needs) => [dx, dw, db])
 */
export function customOp(name: string, inputs: Tensor[], out: Tensor, backward: CustomBackward): Tensor {
  return record('custom', inputs, out, { name, backward });
}

// ---- helpers used by gradient rules and modules -------------------------------------------------------------

export function zerosOf(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  return empty(shape, dtype);
}

/** 0..n-1 as an int32 row (1, n): compared with a column of class indices it makes one-hot masks. */
export function arangeLike(n: number): Tensor {
  const t = empty([1, n], 'int32');
  for (let i = 0; i < n; i++) t.data[i] = i;
  return t;
}

export function onesLike(x: Tensor): Tensor {
  const t = uninitialized(x.shape, x.dtype);
  t.data.fill(1);
  return t;
}

/** Sum `g` down to `shape` (the inverse of broadcasting), for gradients of broadcast inputs. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  const s = axes.length ? sum(g, axes, true) : g;
  return reshape(s, shape);
}

/** Scatter-add `g` (shape of an indexSelect output) back into zeros of `shape`. */
export function indexAdd(shape: readonly number[], dim: number, index: Int32Array, g: Tensor): Tensor {
  const out = empty(shape);
  kernels().scatterAdd(out, dim, index, g);
  return out;
}

/** Place `g` into zeros of `shape` at a strided slice (the gradient of slice). */
export function sliceScatter(
  shape: readonly number[],
  dim: number,
  start: number,
  step: number,
  g: Tensor,
): Tensor {
  const out = empty(shape);
  const strides = out.strides.map((s, i) => (i === dim ? s * step : s));
  const target = viewOf(out, g.shape, strides, g.shape[dim] ? start * out.strides[dim]! : 0);
  kernels().copy(g, target);
  return out;
}

export type { TypedArray };
