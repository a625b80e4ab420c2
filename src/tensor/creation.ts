/**
 * Creating tensors: from typed arrays (no copy), nested arrays, constants, ranges and seeded random numbers.
 * Every random function takes an optional `Generator`; without one it uses the default generator, which
 * `manualSeed` re-seeds. Same seed, same numbers, on every platform.
 */
import { checkOptions, fmtShape, optionKeys, ShapeError, ValueError } from '../errors.js';
import { checkDtype, type DType, dtypeOfArray, type TypedArray } from './dtype.js';
import { empty } from './ops.js';
import { defaultGenerator, type Generator } from './random.js';
import { numel, resolveShape } from './shape.js';
import { Tensor } from './tensor.js';

export interface CreateOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}
const CREATE_OPTIONS = optionKeys<CreateOptions>()(['dtype', 'requiresGrad']);
const RANDOM_OPTIONS = optionKeys<RandomOptions>()(['dtype', 'requiresGrad', 'generator']);

type Nested = number | boolean | readonly Nested[];

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let d: Nested = data;
  while (Array.isArray(d)) {
    shape.push(d.length);
    d = (d as readonly Nested[])[0] as Nested;
  }
  return shape;
}

/**
 * A tensor from a typed array (shared, not copied; shape defaults to 1-D) or from nested arrays (copied; a
 * `shape` lays their values out anew, as a reshape).
 * Float32Array gives float32, Int32Array int32, Uint8Array bool; nested numbers give float32 unless `dtype`.
 * @example tensor([[1, 2], [3, 4]]) // float32 [2,2]
 * @example tensor(new Float32Array(784 * 32), { shape: [32, 784] }) // a batch, no copy
 */
export function tensor(
  data: Nested | TypedArray,
  opts: CreateOptions & { shape?: readonly number[] } = {},
): Tensor {
  checkOptions('tensor', opts, [...CREATE_OPTIONS, 'shape']);
  if (opts.dtype !== undefined) checkDtype('tensor', opts.dtype);
  if (ArrayBuffer.isView(data)) {
    const arr = data as TypedArray;
    const shape = resolved(opts.shape ?? [arr.length], arr.length);
    if (!(arr instanceof Float32Array || arr instanceof Int32Array || arr instanceof Uint8Array)) {
      const name = (arr as object).constructor.name;
      throw new ValueError(
        'tensor',
        `a ${name} is not tensor storage (Float32Array, Int32Array or Uint8Array): convert it, e.g. Float32Array.from(data)`,
      );
    }
    const dt = dtypeOfArray(arr);
    if (opts.dtype && opts.dtype !== dt)
      throw new ValueError('tensor', `a ${arr.constructor.name} holds ${dt}, not ${opts.dtype}`);
    return new Tensor(arr, dt, shape, undefined, 0, gradFlag('tensor', dt, opts));
  }
  const shape = inferShape(data as Nested);
  // Booleans give a bool tensor, as in PyTorch; numbers float32 (JavaScript numbers carry no int type).
  let first: Nested = data as Nested;
  while (Array.isArray(first) && first.length) first = first[0] as Nested;
  const dtype = opts.dtype ?? (typeof first === 'boolean' ? 'bool' : 'float32');
  const t = empty(shape, dtype);
  let i = 0;
  const walk = (d: Nested, depth: number): void => {
    if (depth === shape.length) {
      if (Array.isArray(d))
        throw new ShapeError('tensor', `ragged nested array: expected a number at depth ${depth}`);
      if (typeof d !== 'number' && typeof d !== 'boolean')
        throw new ValueError('tensor', `expected numbers or booleans (got ${describe(d)} at index ${i})`);
      // To bool as PyTorch: any non-zero (NaN too) is true; a byte store would keep 256 as 0, 0.5 as 0.
      t.data[i++] = dtype === 'bool' ? +(d !== 0 && d !== false) : Number(d);
      return;
    }
    if (!Array.isArray(d) || d.length !== shape[depth]) {
      throw new ShapeError(
        'tensor',
        `ragged nested array: expected length ${shape[depth]} at depth ${depth}, got ${Array.isArray(d) ? d.length : 'a number'}`,
      );
    }
    for (const e of d as readonly Nested[]) walk(e, depth + 1);
  };
  walk(data as Nested, 0);
  // A shape given with nested data lays the values out in it (`tensor([1, 2, 3, 4], { shape: [2, 2] })`); it
  // used to be ignored without a word.
  const out = opts.shape === undefined ? t : new Tensor(t.data, dtype, resolved(opts.shape, t.size));
  out.requiresGrad = gradFlag('tensor', dtype, opts);
  return out;
}

/** `shape` (one -1 allowed) for n elements, or a ShapeError naming both. */
function resolved(shape: readonly number[], n: number): number[] {
  const out = resolveShape('tensor', shape, n);
  if (numel(out) !== n) {
    throw new ShapeError('tensor', `shape ${fmtShape(out)} needs ${numel(out)} elements, the data has ${n}`);
  }
  return out;
}

/** A value's type for a message: `string '1.5'`, `null`, `undefined`. */
function describe(v: unknown): string {
  return v === null || v === undefined ? String(v) : `${typeof v} ${JSON.stringify(v) ?? String(v)}`;
}

/** `opts.requiresGrad`, refused for an int or bool tensor (PyTorch: only floating point tensors can). */
function gradFlag(op: string, dtype: DType, opts: CreateOptions): boolean {
  if (opts.requiresGrad && dtype !== 'float32')
    throw new ValueError(op, `only float tensors can require gradients (got ${dtype})`);
  return opts.requiresGrad ?? false;
}

function filled(shape: readonly number[], value: number, opts: CreateOptions): Tensor {
  if (typeof shape === 'number' && typeof opts === 'number')
    throw new ValueError(
      'full',
      `a shape is one array: zeros([${shape}, ${opts}, ...]), not zeros(${shape}, ${opts}, ...)`,
    );
  checkOptions('full', opts, CREATE_OPTIONS);
  if (opts.dtype !== undefined) checkDtype('full', opts.dtype);
  if (typeof value !== 'number' && typeof value !== 'boolean')
    throw new ValueError(
      'full',
      `the fill value must be a number or a boolean (got ${typeof value} ${String(value)})`,
    );
  const t = empty(resolveShape('full', shape), opts.dtype ?? 'float32');
  if (value !== 0) t.data.fill(t.dtype === 'bool' ? +((value as unknown) !== false) : Number(value));
  t.requiresGrad = gradFlag('full', t.dtype, opts);
  return t;
}

/** @example zeros([32, 10]) */
export const zeros = (shape: readonly number[], opts: CreateOptions = {}) => filled(shape, 0, opts);
export const ones = (shape: readonly number[], opts: CreateOptions = {}) => filled(shape, 1, opts);
export const full = (shape: readonly number[], value: number, opts: CreateOptions = {}) =>
  filled(shape, value, opts);
export const zerosLike = (x: Tensor, opts: CreateOptions = {}) =>
  filled(x.shape, 0, { dtype: x.dtype, ...opts });
export const onesLike = (x: Tensor, opts: CreateOptions = {}) =>
  filled(x.shape, 1, { dtype: x.dtype, ...opts });

/** start, start+step, ... below end. Integer arguments give int32 (as PyTorch), otherwise float32. */
export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new ValueError('arange', 'step must be nonzero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const ints = [start, end, step].every(Number.isInteger);
  checkOptions('arange', opts, CREATE_OPTIONS);
  if (opts.dtype !== undefined) checkDtype('arange', opts.dtype);
  const t = empty([n], opts.dtype ?? (ints ? 'int32' : 'float32'));
  for (let i = 0; i < n; i++) t.data[i] = start + i * step;
  t.requiresGrad = gradFlag('arange', t.dtype, opts);
  return t;
}

function random(shape: readonly number[], opts: RandomOptions, draw: (g: Generator) => number): Tensor {
  checkOptions('random', opts, RANDOM_OPTIONS);
  if (opts.dtype !== undefined) checkDtype('random', opts.dtype);
  const t = empty(resolveShape('random', shape), opts.dtype ?? 'float32');
  const g = opts.generator ?? defaultGenerator;
  for (let i = 0; i < t.data.length; i++) t.data[i] = draw(g);
  t.requiresGrad = gradFlag('random', t.dtype, opts);
  return t;
}

/** Uniform on [0, 1). */
export const rand = (shape: readonly number[], opts: RandomOptions = {}) =>
  random(shape, opts, (g) => g.uniform());
/** Standard normal. */
export const randn = (shape: readonly number[], opts: RandomOptions = {}) =>
  random(shape, opts, (g) => g.normal());
/** Uniform on [low, high) scaled: PyTorch's `uniform_(low, high)`. */
export function uniform(
  shape: readonly number[],
  low: number,
  high: number,
  opts: RandomOptions = {},
): Tensor {
  return random(shape, opts, (g) => low + (high - low) * g.uniform());
}
/** Integers uniform in [low, high), int32. */
export function randint(
  low: number,
  high: number,
  shape: readonly number[],
  opts: RandomOptions = {},
): Tensor {
  if (!(high > low))
    throw new ValueError(
      'randint',
      `random_ expects 'from' to be less than 'to', but got from=${low} >= to=${high}`,
    );
  return random(shape, { dtype: 'int32', ...opts }, (g) => g.int(low, high));
}
/** A random permutation of 0..n-1, int32. */
export function randperm(n: number, opts: { generator?: Generator } = {}): Tensor {
  checkOptions('randperm', opts, ['generator']);
  return new Tensor((opts.generator ?? defaultGenerator).permutation(n), 'int32', [n]);
}
