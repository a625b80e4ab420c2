/**
 * Collation: a list of N samples becomes one batch, batch-first (PyTorch's `default_collate`). Tensors are
 * stacked, typed arrays and numbers become tensors, arrays and plain objects are collated field by field.
 * A batch's dtype follows the samples' types, except for numbers: JavaScript has one number type, so a
 * batch of numbers is int32 when all of them are integers and float32 otherwise, and a float field whose
 * values happen to be whole in one batch comes out int32 in that batch. A rule fixes a field's dtype
 * (see `makeCollate`).
 * Each kind has a rule in a table keyed by constructor; the rule for a value is found by walking its
 * prototype chain (so a subclass uses its parent's rule unless it has one), and a table with more rules
 * makes a new collate function (`makeCollate`).
 *
 * Shapes: N = batch, T = time steps (longest in the batch after padding), D = features.
 */
import { fmtShape, ShapeError, ValueError } from '../errors.js';
import { full, tensor, zeros } from '../tensor/creation.js';
import { contiguous, stack } from '../tensor/ops.js';
import { numel } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { ModuleSpec } from './dataset.js';

/**
 * Collates the values found at one place (`path`, e.g. `[0]` or `image`) in every sample. `collate`
 * recurses into nested values with the same table.
 */
export type CollateRule = (
  values: unknown[],
  path: string,
  collate: (values: unknown[], path: string) => unknown,
) => unknown;

/** A class, or a primitive's wrapper (`Number` for numbers). */
export type CollateKey = abstract new (...args: never[]) => unknown;

/**
 * A collate function; `spec` (how a worker thread loads it) is needed with `numWorkers > 0`.
 * The parameter type is `never[]` so that any `(samples: MySample[]) => B` fits.
 */
export type CollateFn<B = unknown> = ((samples: never[]) => B) & { spec?: ModuleSpec };

const where = (path: string) => (path === '' ? 'the samples' : `field ${path}`);

const typeName = (v: unknown): string =>
  v === null ? 'null' : typeof v === 'object' ? (v.constructor?.name ?? 'Object') : typeof v;

/** Throws unless every value passes `ok`, naming the field and the first sample that does not. */
function expectAll(values: unknown[], path: string, ok: (v: unknown) => boolean): void {
  const i = values.findIndex((v) => !ok(v));
  if (i >= 0) {
    throw new ValueError(
      'collate',
      `samples differ in type at ${where(path)} (got ${typeName(values[i])} in sample ${i}, expected ${typeName(values[0])} as in sample 0)`,
    );
  }
}

const SEQUENCE_HINT = '; sequences of different lengths need padding (padCollate)';

function ragged(path: string, i: number, got: string, expected: string, hint = ''): ShapeError {
  return new ShapeError(
    'collate',
    `samples differ in shape at ${where(path)} (got ${got} in sample ${i}, expected ${expected} as in sample 0)${hint}`,
  );
}

/** The %TypedArray% intrinsic, parent of Float32Array and the rest, so one rule covers them all. */
const TypedArrayBase = Object.getPrototypeOf(Int8Array) as CollateKey;

const stackTensors: CollateRule = (values, path) => {
  expectAll(values, path, (v) => v instanceof Tensor);
  const ts = values as Tensor[];
  const first = ts[0]!;
  ts.forEach((t, i) => {
    if (t.shape.join() !== first.shape.join()) {
      const onlyLength = t.rank === first.rank && t.shape.slice(1).join() === first.shape.slice(1).join();
      throw ragged(path, i, fmtShape(t.shape), fmtShape(first.shape), onlyLength ? SEQUENCE_HINT : '');
    }
    if (t.dtype !== first.dtype) {
      throw new ValueError(
        'collate',
        `samples differ in dtype at ${where(path)} (got ${t.dtype} in sample ${i}, expected ${first.dtype} as in sample 0)`,
      );
    }
  });
  return stack(ts, 0);
};

// (N, length): Float32Array float32 and Int32Array int32, as `tensor(array)` makes them, and Uint8Array
// int32. Bytes are numbers 0..255 (readIdx's pixels), which tensor() would make bool: PyTorch gives uint8,
// which minibatch lacks, and int32 keeps the values. By type, never by value, so that a batch's dtype does
// not depend on its contents; bool batches come from booleans and bool tensors.
const stackTypedArrays: CollateRule = (values, path) => {
  const Ctor = (values[0] as object).constructor as
    | Float32ArrayConstructor
    | Int32ArrayConstructor
    | Uint8ArrayConstructor;
  if (!([Float32Array, Int32Array, Uint8Array] as unknown[]).includes(Ctor)) {
    throw new ValueError(
      'collate',
      `cannot collate a ${Ctor.name} at ${where(path)} (expected Float32Array, Int32Array or Uint8Array, as tensor() takes)`,
    );
  }
  expectAll(values, path, (v) => v instanceof Ctor);
  const arrays = values as Float32Array[];
  const len = arrays[0]!.length;
  const out =
    Ctor === Float32Array ? new Float32Array(arrays.length * len) : new Int32Array(arrays.length * len);
  arrays.forEach((a, i) => {
    if (a.length !== len) throw ragged(path, i, `length ${a.length}`, `length ${len}`);
    out.set(a, i * len);
  });
  return tensor(out, { shape: [arrays.length, len] });
};

// JavaScript has one number type: a batch of int32-range integers is int32 (labels), anything else
// float32. Mixed batches promote like PyTorch's arithmetic, so a float batch that happens to be integral
// still computes correctly. The dtype is decided per batch, so it can change from batch to batch: a rule
// for Number in makeCollate fixes it.
const numbersToTensor: CollateRule = (values, path) => {
  expectAll(values, path, (v) => typeof v === 'number');
  const nums = values as number[];
  const int = nums.every((x) => Number.isInteger(x) && x >= -(2 ** 31) && x < 2 ** 31);
  return tensor(int ? Int32Array.from(nums) : Float32Array.from(nums));
};

const booleansToTensor: CollateRule = (values, path) => {
  expectAll(values, path, (v) => typeof v === 'boolean');
  return tensor(Uint8Array.from(values as boolean[], Number));
};

const keepStrings: CollateRule = (values, path) => {
  expectAll(values, path, (v) => typeof v === 'string');
  return values;
};

const transposeArrays: CollateRule = (values, path, collate) => {
  expectAll(values, path, Array.isArray);
  const arrays = values as unknown[][];
  const len = arrays[0]!.length;
  arrays.forEach((a, i) => {
    if (a.length !== len) throw ragged(path, i, `${a.length} elements`, `${len} elements`);
  });
  return arrays[0]!.map((_, j) =>
    collate(
      arrays.map((a) => a[j]),
      `${path}[${j}]`,
    ),
  );
};

const byKey: CollateRule = (values, path, collate) => {
  const first = values[0] as Record<string, unknown>;
  if (Object.getPrototypeOf(first) !== Object.prototype) {
    throw new ValueError(
      'collate',
      `no collate rule for ${typeName(first)} at ${where(path)} (add one with makeCollate)`,
    );
  }
  expectAll(values, path, (v) => typeof v === 'object' && v !== null && !Array.isArray(v));
  const keys = Object.keys(first);
  (values as Record<string, unknown>[]).forEach((v, i) => {
    const ks = Object.keys(v);
    if (ks.length !== keys.length || ks.some((k) => !(k in first))) {
      throw new ValueError(
        'collate',
        `samples differ in keys at ${where(path)} (got ${ks.join(', ')} in sample ${i}, expected ${keys.join(', ')} as in sample 0)`,
      );
    }
  });
  return Object.fromEntries(
    keys.map((k) => [
      k,
      collate(
        values.map((v) => (v as Record<string, unknown>)[k]),
        path ? `${path}.${k}` : k,
      ),
    ]),
  );
};

/** The default table. Copy it into a new Map to add rules: `new Map([...defaultCollateRules, [K, rule]])`. */
export const defaultCollateRules: ReadonlyMap<CollateKey, CollateRule> = new Map<CollateKey, CollateRule>([
  [Tensor, stackTensors],
  [TypedArrayBase, stackTypedArrays],
  [Number, numbersToTensor],
  [Boolean, booleansToTensor],
  [String, keepStrings],
  [Array, transposeArrays],
  [Object, byKey],
]);

/**
 * A collate function over a rule table: the rule of the first sample's value applies, found along its
 * prototype chain; every other sample must match it.
 *
 * @example
 * class Point { constructor(readonly x: number, readonly y: number) {} }
 * const collate = makeCollate(new Map([
 *   ...defaultCollateRules,
 *   [Point, (ps) => tensor((ps as Point[]).map((p) => [p.x, p.y]))], // (N, 2)
 * ]));
 * collate([{ at: new Point(1, 2) }, { at: new Point(3, 4) }]); // { at: (2, 2) }
 *
 * // Regression targets are float32 in every batch, even one whose values are all whole (default: int32
 * // then); the rule sees where it is (`path`: '[1]' for the second element of [x, y] samples).
 * const numbers = defaultCollateRules.get(Number)!;
 * export const floatTargets = Object.assign(
 *   makeCollate(new Map([
 *     ...defaultCollateRules,
 *     [Number, (vs, path, c) => (path === '[1]' ? tensor(Float32Array.from(vs as number[])) : numbers(vs, path, c))],
 *   ])),
 *   { spec: { module: import.meta.url, export: 'floatTargets' } }, // for numWorkers > 0
 * );
 */
export function makeCollate(
  rules: ReadonlyMap<CollateKey, CollateRule>,
): <B = Tensor[]>(samples: readonly unknown[]) => B {
  const collate = (values: unknown[], path: string): unknown => {
    if (values.length === 0) throw new ValueError('collate', 'cannot collate an empty list of samples');
    const first = values[0];
    if (first === null || first === undefined) {
      throw new ValueError('collate', `${where(path)} is ${first} in sample 0 (expected a value)`);
    }
    for (let p = Object.getPrototypeOf(first); p !== null; p = Object.getPrototypeOf(p)) {
      const rule = rules.get(p.constructor);
      if (rule) return rule(values, path, collate);
    }
    throw new ValueError('collate', `no collate rule for ${typeName(first)} at ${where(path)}`);
  };
  return <B>(samples: readonly unknown[]) => collate([...samples], '') as B;
}

/**
 * The default collate: stacks tensors, typed arrays and numbers batch-first and recurses into arrays and
 * plain objects. Float32Array rows become float32, Int32Array and Uint8Array rows int32, booleans bool;
 * strings stay a list. Numbers become int32 when every number of the batch is an integer, float32
 * otherwise: decided per batch (JavaScript has one number type), so a field of numbers can change dtype
 * between batches; `makeCollate` with a rule for Number fixes it.
 *
 * @example
 * defaultCollate([[x0, 3], [x1, 7]]); // [stack([x0, x1]) (2, ...), int32 [3, 7]]
 * defaultCollate([{ a: 1.5 }, { a: 2 }]); // { a: float32 [1.5, 2] }
 */
export const defaultCollate = Object.assign(makeCollate(defaultCollateRules), {
  spec: { module: import.meta.url, export: 'defaultCollate' } as ModuleSpec,
});

/**
 * Pad sequences (T_i, ...) to the longest: data (N, T, ...) filled with `padValue` past each end, and mask
 * (N, T) bool, true where a step is real.
 *
 * @example
 * const [x, mask] = padSequences([a, b]); // a (3, 8), b (5, 8) -> x (2, 5, 8), mask (2, 5)
 */
export function padSequences(seqs: readonly Tensor[], padValue = 0): [Tensor, Tensor] {
  if (seqs.length === 0) throw new ValueError('padSequences', 'expected a non-empty list of sequences');
  const first = seqs[0]!;
  const rest = first.shape.slice(1);
  seqs.forEach((s, i) => {
    if (s.rank === 0 || s.shape.slice(1).join() !== rest.join() || s.dtype !== first.dtype) {
      throw new ShapeError(
        'padSequences',
        `sequences must agree in every dimension but the first, and in dtype (got ${s.dtype} ${fmtShape(s.shape)} at ${i}, expected ${first.dtype} [T,${rest.join(',')}] as at 0)`,
      );
    }
  });
  const T = Math.max(...seqs.map((s) => s.shape[0]!));
  const step = numel(rest);
  const data = full([seqs.length, T, ...rest], padValue, { dtype: first.dtype });
  const mask = zeros([seqs.length, T], { dtype: 'bool' });
  seqs.forEach((s, i) => {
    data.data.set(contiguous(s).data, i * T * step);
    mask.data.fill(1, i * T, i * T + s.shape[0]!);
  });
  return [data, mask];
}

/**
 * Collate for sequence samples `[seq (T_i, D), ...rest]`: `[x (N, T, D), mask (N, T), ...rest collated]`,
 * padding with zeros to the longest sequence in the batch (pair it with `BucketBatchSampler` to keep that
 * short). A bare sequence sample gives `[x, mask]`.
 *
 * @example
 * const loader = new DataLoader(sentences, { batchSampler: new BucketBatchSampler(lengths, 32), collate: padCollate });
 * for (const [x, mask, y] of loader) { ... }
 */
export const padCollate = Object.assign(
  (samples: readonly (Tensor | readonly [Tensor, ...unknown[]])[]): Tensor[] => {
    const seqs = samples.map((s) => (s instanceof Tensor ? s : s[0]));
    const rest = samples.map((s) => (s instanceof Tensor ? [] : s.slice(1)));
    return [...padSequences(seqs), ...defaultCollate<Tensor[]>(rest)];
  },
  { spec: { module: import.meta.url, export: 'padCollate' } as ModuleSpec },
);
