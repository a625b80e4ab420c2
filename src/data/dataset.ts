/**
 * Datasets, after PyTorch's `torch/utils/data/dataset.py`. A map-style `Dataset` is read in the order a
 * sampler chooses (`getItem(i)`, `length`, and optionally a batched `getItems(indices)` that returns a whole
 * batch at once); an `IterableDataset` is a stream read front to back, for data larger than memory.
 *
 * Worker threads (`DataLoader` with `numWorkers > 0`): objects and functions cannot cross threads, so a
 * dataset read by workers carries a `spec` saying how to build it again: a module, the export to construct
 * with `new`, and its arguments (structured-cloneable values, or nested specs, which are built first).
 * Each worker imports the module and builds its own copy:
 *
 *   export class Lines implements Dataset<string> {
 *     readonly spec: ModuleSpec;
 *     constructor(readonly file: string) {
 *       this.spec = { module: import.meta.url, export: 'Lines', args: [file] };
 *     }
 *     ...
 *   }
 *
 * `module` must be an absolute URL of compiled JavaScript: `import.meta.url` of the class's own module, or
 * `new URL('./my-dataset.js', import.meta.url).href`. Code runs from `build/src/...` and `build/test/...` in
 * this repository and from `dist/` when installed, never from the `.ts` sources, so resolve the path from
 * the compiled file, not from the source tree.
 *
 * Every worker imports `module`, running its top-level code. A Dataset defined in the training script
 * itself makes each worker run the training loop, whose DataLoader would start workers importing the script
 * again, without end: a DataLoader with workers refuses to start inside a worker (a StateError naming
 * spec.module). Put the Dataset in a module of its own, or guard the training code:
 * `if (isMainThread) { ... }` (from node:worker_threads).
 */
import { fmtShape, kindOf, ValueError } from '../errors.js';
import { indexSelect, select } from '../tensor/ops.js';
import { defaultGenerator, Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import type { RandomOptions } from './sampler.js';

/** How a worker thread builds an object: `new (await import(module))[export](...args)`. */
export interface ModuleSpec {
  /**
   * An absolute URL (or absolute path) of a compiled ES module. Workers run its top-level code: not the
   * training script, unless its training code is guarded by `isMainThread` (see the module comment).
   */
  module: string;
  export: string;
  /** Structured-cloneable arguments; a nested spec is built first and passed as the object. */
  args?: readonly unknown[];
}

/**
 * A map-style dataset: `length` samples, read by index.
 *
 * @example
 * const squares: Dataset<number> = { length: 10, getItem: (i) => i * i };
 */
export abstract class Dataset<T = unknown, B = unknown> {
  abstract readonly length: number;
  abstract getItem(index: number): T;
  /**
   * A whole batch at once, already collated (one gather per tensor instead of N small tensors). The
   * DataLoader reads batches through it unless a subclass overrides `getItem` below the class that defines
   * `getItems` (augmentation): then it calls that `getItem` per sample and collates, as PyTorch always does.
   */
  getItems?(indices: Int32Array): B;
  /** How worker threads build this dataset (see the module comment). */
  readonly spec?: ModuleSpec;
}

/**
 * A stream of samples, sync or async, read front to back. `length`, when known, sizes `DataLoader.length`.
 * Each epoch asks it for a new iterator, so it is an iterable, not a one-shot iterator such as a generator
 * object (the DataLoader refuses those). With workers each worker iterates its own copy; shard by
 * `workerInfo()` or every worker yields everything.
 *
 * @example
 * const stream: IterableDataset<number> = {
 *   *[Symbol.iterator]() {
 *     const { id = 0, numWorkers = 1 } = workerInfo() ?? {};
 *     for (let i = id; i < 1000; i += numWorkers) yield i;
 *   },
 * };
 */
export type IterableDataset<T = unknown> = (Iterable<T> | AsyncIterable<T>) & {
  readonly length?: number;
  readonly spec?: ModuleSpec;
};

/**
 * Tensors that share their first dimension; sample i is `[t[i] for each tensor]`, and a batch is one
 * `indexSelect` per tensor rather than a stack of N small tensors.
 *
 * @example
 * const ds = new TensorDataset(X, y); // X (N, 784), y (N)
 * ds.getItems(Int32Array.of(3, 1));   // [X rows 3 and 1 (2, 784), y[3], y[1] (2)]
 */
export class TensorDataset<T extends Tensor[] = Tensor[]> implements Dataset<T, T> {
  readonly tensors: T;
  readonly length: number;

  constructor(...tensors: T) {
    if (tensors.length === 0) throw new ValueError('TensorDataset', 'expected at least one tensor');
    const notTensor = tensors.findIndex((t) => !(t instanceof Tensor));
    if (notTensor >= 0) {
      const got = tensors[notTensor] as unknown;
      throw new ValueError(
        'TensorDataset',
        `argument ${notTensor} is ${kindOf(got)}, not a Tensor (make it one: tensor(...))`,
      );
    }
    const n = tensors[0]!.shape[0];
    const bad = tensors.find((t) => t.rank === 0 || t.shape[0] !== n);
    if (n === undefined || bad) {
      throw new ValueError(
        'TensorDataset',
        `size mismatch between tensors (got ${fmtShape(bad?.shape ?? [])}, expected first dimension ${n ?? 'of at least one dimension'} as in ${fmtShape(tensors[0]!.shape)})`,
      );
    }
    this.tensors = tensors;
    this.length = n;
  }

  getItem(index: number): T {
    return this.tensors.map((t) => select(t, 0, index)) as T;
  }

  getItems(indices: Int32Array): T {
    return this.tensors.map((t) => indexSelect(t, 0, indices)) as T;
  }
}

/**
 * The samples of `dataset` at `indices`, in that order. Batched reads and worker specs pass through.
 *
 * @example
 * const firstTen = new Subset(ds, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
 */
export class Subset<T = unknown, B = unknown> implements Dataset<T, B> {
  readonly indices: Int32Array;
  readonly length: number;
  readonly getItems?: (indices: Int32Array) => B;
  readonly spec?: ModuleSpec;

  constructor(
    readonly dataset: Dataset<T, B>,
    indices: ArrayLike<number>,
  ) {
    this.indices = Int32Array.from(indices);
    this.length = this.indices.length;
    const bad = Array.from(indices).find((i) => !Number.isInteger(i) || i < 0 || i >= dataset.length);
    if (bad !== undefined) {
      throw new ValueError(
        'Subset',
        `index ${bad} is out of range (expected an integer in [0, ${dataset.length}))`,
      );
    }
    const { getItems } = dataset;
    // Batched only where reading samples one by one would give the same batch: not when the dataset, or a
    // subclass of Subset, overrides getItem.
    if (getItems && readsBatches(dataset) && this.getItem === Subset.prototype.getItem)
      this.getItems = (idx) =>
        getItems.call(
          dataset,
          idx.map((i) => this.at(i)),
        );
    if (dataset.spec)
      this.spec = { module: import.meta.url, export: 'Subset', args: [dataset.spec, this.indices] };
  }

  private at(i: number): number {
    if (!(i >= 0 && i < this.length)) {
      throw new ValueError('Subset', `index ${i} is out of range (expected [0, ${this.length}))`);
    }
    return this.indices[i]!;
  }

  getItem(index: number): T {
    return this.dataset.getItem(this.at(index));
  }
}

/**
 * Split a dataset into non-overlapping random subsets of the given lengths: counts summing to its length,
 * or fractions summing to 1 (floored, with the remainder handed out one each from the first, as PyTorch
 * does). Seeded like the samplers: `seed` or `generator`, else a draw from the default generator.
 *
 * @example
 * const [train, val] = randomSplit(ds, [0.9, 0.1], { seed: 42 });
 */
export function randomSplit<T, B>(
  dataset: Dataset<T, B>,
  lengths: readonly number[],
  options: RandomOptions = {},
): Subset<T, B>[] {
  const n = dataset.length;
  const total = lengths.reduce((a, b) => a + b, 0);
  let counts = [...lengths];
  if (Math.abs(total - 1) < 1e-9 && total <= 1 && lengths.every((f) => f >= 0 && f <= 1)) {
    counts = lengths.map((f) => Math.floor(n * f));
    for (let k = 0, rest = n - counts.reduce((a, b) => a + b, 0); k < rest; k++) counts[k % counts.length]!++;
  }
  if (counts.some((c) => !Number.isSafeInteger(c) || c < 0) || counts.reduce((a, b) => a + b, 0) !== n) {
    throw new ValueError(
      'randomSplit',
      `sum of input lengths does not equal the length of the input dataset (got [${lengths.join(', ')}], expected counts summing to ${n} or fractions summing to 1)`,
    );
  }
  if (options.seed !== undefined && options.generator !== undefined) {
    throw new ValueError('randomSplit', 'give either seed or generator, not both');
  }
  const g = options.generator ?? new Generator(options.seed ?? defaultGenerator.nextUint32());
  const perm = g.permutation(n);
  let start = 0;
  return counts.map((c) => new Subset(dataset, perm.subarray(start, (start += c))));
}

/** Facts about the worker thread this code runs in (PyTorch's `get_worker_info`). */
export interface WorkerInfo {
  /** 0 .. numWorkers-1. */
  id: number;
  numWorkers: number;
  /** baseSeed + id; the worker's default generator is seeded with it. */
  seed: number;
}

/** Where worker.ts puts the WorkerInfo: a global, so that a second copy of the library still sees it. */
export const WORKER_INFO = Symbol.for('minibatch.workerInfo');

/**
 * Inside a DataLoader worker, which worker this is; undefined in the main thread. Iterable datasets use it
 * to shard the stream.
 *
 * @example
 * const { id, numWorkers } = workerInfo() ?? { id: 0, numWorkers: 1 };
 */
export function workerInfo(): WorkerInfo | undefined {
  return (globalThis as { [WORKER_INFO]?: WorkerInfo })[WORKER_INFO];
}

/**
 * Whether batches come from the dataset's `getItems`: it has one, and `getItem` is not overridden closer to
 * the object than `getItems` is defined. A subclass that augments in `getItem` (`class Aug extends
 * TensorDataset`) inherits a `getItems` that never calls it, and would be read without its augmentation.
 */
export function readsBatches(dataset: Dataset<unknown, unknown>): boolean {
  for (let p: object | null = dataset; p !== null; p = Object.getPrototypeOf(p)) {
    // getItems first: both on one object (a class defining both, a plain object) is the batched case.
    if (Object.hasOwn(p, 'getItems')) return typeof dataset.getItems === 'function';
    if (Object.hasOwn(p, 'getItem')) return false;
  }
  return false;
}

/** A batch: the dataset's own `getItems` (see `readsBatches`), or `collate` over the samples. */
export function fetchBatch<B>(
  dataset: Dataset<unknown, B>,
  indices: Int32Array,
  collate: (samples: unknown[]) => B,
): B {
  if (readsBatches(dataset)) return dataset.getItems!(indices);
  return collate(Array.from(indices, (i) => dataset.getItem(i)));
}

/** Consecutive runs of `batchSize` samples of a stream, collated; the short last one unless `dropLast`. */
export function* streamBatches<B>(
  stream: Iterable<unknown>,
  batchSize: number,
  dropLast: boolean,
  collate: (samples: unknown[]) => B,
): IterableIterator<B> {
  let samples: unknown[] = [];
  for (const s of stream) {
    samples.push(s);
    if (samples.length === batchSize) {
      yield collate(samples);
      samples = [];
    }
  }
  if (samples.length > 0 && !dropLast) yield collate(samples);
}

/** `streamBatches` for async streams (and sync ones, which `for await` accepts too). */
export async function* asyncStreamBatches<B>(
  stream: Iterable<unknown> | AsyncIterable<unknown>,
  batchSize: number,
  dropLast: boolean,
  collate: (samples: unknown[]) => B,
): AsyncGenerator<B> {
  let samples: unknown[] = [];
  for await (const s of stream) {
    samples.push(s);
    if (samples.length === batchSize) {
      yield collate(samples);
      samples = [];
    }
  }
  if (samples.length > 0 && !dropLast) yield collate(samples);
}
