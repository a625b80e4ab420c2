/**
 * Samplers: iterables of dataset indices, after PyTorch's `torch/utils/data/sampler.py`. A DataLoader asks a
 * batch sampler for `Int32Array` batches of indices and fetches those items; anything iterable with a
 * `length` can stand in for a sampler.
 *
 * Randomness (REFERENCE §1.8): a sampler given a `seed` or a `generator` draws each epoch's order from that one
 * advancing generator, so epochs differ but the sequence of epochs repeats for the same seed. With neither,
 * each epoch seeds a fresh generator from `defaultGenerator`, so `manualSeed` makes it reproducible. Orders
 * match PyTorch's semantics, not its indices (that would need torch's mt19937 `randperm`).
 */
import { checkOptions, optionKeys, ValueError } from '../errors.js';
import { defaultGenerator, Generator } from '../tensor/random.js';

/** Anything that yields indices (or batches of them) and knows how many it will yield per epoch. */
export interface Sampler<T = number> extends Iterable<T> {
  readonly length: number;
  /** Tell the sampler which epoch comes next (the DataLoader calls it before each epoch). */
  setEpoch?(epoch: number): void;
}

/** Where a random sampler's randomness comes from; give at most one of the two. */
export interface RandomOptions {
  seed?: number;
  generator?: Generator;
}
const RANDOM_OPTIONS = optionKeys<RandomOptions>()(['seed', 'generator']);

/** A dataset, or just its size. */
export type DataSource = number | { readonly length: number };

function sizeOf(op: string, source: DataSource): number {
  const n = typeof source === 'number' ? source : source.length;
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new ValueError(op, `data source length must be a non-negative integer (got ${n})`);
  }
  return n;
}

// PyTorch's wording, so its users recognise the message: "batch_size should be a positive integer value,
// but got batch_size=0".
function checkPositive(op: string, name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new ValueError(op, `${name} should be a positive integer value, but got ${name}=${value}`);
  }
}

/** Refuse a seed that is not an integer or a generator that is not a Generator (shared with DataLoader). */
export function checkRandomOptions(op: string, { seed, generator }: RandomOptions): void {
  if (seed !== undefined && generator !== undefined) {
    throw new ValueError(op, 'give either seed or generator, not both');
  }
  if (seed !== undefined && !Number.isSafeInteger(seed)) {
    throw new ValueError(op, `seed should be an integer (got ${String(seed)})`);
  }
  if (generator !== undefined && !(generator instanceof Generator)) {
    throw new ValueError(op, `generator should be a Generator (got ${typeof generator})`);
  }
}

/** Returns the generator for each new epoch: the same advancing one, or a fresh one seeded from the default. */
function epochGenerators(op: string, { seed, generator }: RandomOptions): () => Generator {
  checkRandomOptions(op, { seed, generator });
  const g = generator ?? (seed === undefined ? undefined : new Generator(seed));
  return g ? () => g : () => new Generator(defaultGenerator.nextUint32());
}

function batchCount(n: number, batchSize: number, dropLast: boolean): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/**
 * Yields 0, 1, ..., n-1 in order.
 *
 * @example
 * [...new SequentialSampler(3)]; // [0, 1, 2]
 */
export class SequentialSampler implements Sampler {
  readonly length: number;

  constructor(dataSource: DataSource) {
    this.length = sizeOf('SequentialSampler', dataSource);
  }

  *[Symbol.iterator](): Iterator<number> {
    for (let i = 0; i < this.length; i++) yield i;
  }
}

/**
 * A new random order each epoch. Without replacement it yields whole permutations of 0..n-1 (and part of
 * one more when `numSamples` is not a multiple of n); with replacement, `numSamples` uniform draws.
 *
 * @example
 * const s = new RandomSampler(5, { seed: 0 });
 * [...s]; // a permutation of 0..4
 * [...s]; // another one; the same two for seed 0 every run
 */
export class RandomSampler implements Sampler {
  readonly length: number;
  private readonly n: number;
  private readonly replacement: boolean;
  private readonly nextGenerator: () => Generator;

  constructor(
    dataSource: DataSource,
    options: RandomOptions & { replacement?: boolean; numSamples?: number } = {},
  ) {
    this.n = sizeOf('RandomSampler', dataSource);
    checkOptions('RandomSampler', options, ['replacement', 'numSamples', ...RANDOM_OPTIONS]);
    if (options.replacement !== undefined && typeof options.replacement !== 'boolean') {
      throw new ValueError(
        'RandomSampler',
        `replacement should be a boolean value, but got replacement=${String(options.replacement)}`,
      );
    }
    this.replacement = options.replacement ?? false;
    this.length = options.numSamples ?? this.n;
    checkPositive('RandomSampler', 'num_samples', this.length);
    if (this.n === 0) throw new ValueError('RandomSampler', 'cannot sample from an empty data source');
    this.nextGenerator = epochGenerators('RandomSampler', options);
  }

  *[Symbol.iterator](): Iterator<number> {
    const g = this.nextGenerator();
    if (this.replacement) {
      for (let i = 0; i < this.length; i++) yield g.int(0, this.n);
      return;
    }
    for (let i = 0; i < Math.floor(this.length / this.n); i++) yield* g.permutation(this.n);
    yield* g.permutation(this.n).subarray(0, this.length % this.n);
  }
}

/**
 * The given indices in a new random order each epoch (a validation split carved from a training set).
 *
 * @example
 * [...new SubsetRandomSampler([10, 11, 12], { seed: 1 })]; // 10, 11, 12 in some order
 */
export class SubsetRandomSampler implements Sampler {
  readonly length: number;
  private readonly indices: number[];
  private readonly nextGenerator: () => Generator;

  constructor(indices: ArrayLike<number>, options: RandomOptions = {}) {
    checkOptions('SubsetRandomSampler', options, RANDOM_OPTIONS);
    this.indices = Array.from(indices);
    const bad = this.indices.find((i) => !Number.isSafeInteger(i) || i < 0);
    if (bad !== undefined) {
      throw new ValueError('SubsetRandomSampler', `indices must be non-negative integers (got ${bad})`);
    }
    this.length = this.indices.length;
    this.nextGenerator = epochGenerators('SubsetRandomSampler', options);
  }

  *[Symbol.iterator](): Iterator<number> {
    for (const p of this.nextGenerator().permutation(this.length)) yield this.indices[p]!;
  }
}

/**
 * Index i drawn with probability weights[i] / sum(weights), `numSamples` times per epoch (to rebalance
 * classes, give each sample 1 / its class count). Without replacement each index appears at most once.
 *
 * @example
 * // about three times as many 1s as 0s
 * [...new WeightedRandomSampler([1, 3], 1000, { seed: 0 })];
 */
export class WeightedRandomSampler implements Sampler {
  readonly length: number;
  private readonly weights: Float64Array;
  private readonly replacement: boolean;
  private readonly nextGenerator: () => Generator;

  constructor(
    weights: ArrayLike<number>,
    numSamples: number,
    options: RandomOptions & { replacement?: boolean } = {},
  ) {
    const op = 'WeightedRandomSampler';
    checkOptions(op, options, ['replacement', ...RANDOM_OPTIONS]);
    checkPositive(op, 'num_samples', numSamples);
    this.weights = Float64Array.from(weights);
    this.replacement = options.replacement ?? true;
    if (typeof this.replacement !== 'boolean') {
      throw new ValueError(
        op,
        `replacement should be a boolean value, but got replacement=${String(options.replacement)}`,
      );
    }
    // Checked here rather than at each epoch's draw (where torch.multinomial checks), with its messages.
    if (this.weights.some((w) => !Number.isFinite(w) || w < 0)) {
      throw new ValueError(op, 'probability tensor contains either `inf`, `nan` or element < 0');
    }
    const positive = this.weights.filter((w) => w > 0).length;
    if (positive === 0)
      throw new ValueError(op, 'invalid multinomial distribution (sum of probabilities <= 0)');
    if (!this.replacement && numSamples > positive) {
      throw new ValueError(
        op,
        `cannot draw ${numSamples} samples without replacement from ${positive} non-zero weights`,
      );
    }
    this.length = numSamples;
    this.nextGenerator = epochGenerators(op, options);
  }

  *[Symbol.iterator](): Iterator<number> {
    const g = this.nextGenerator();
    const w = this.weights;
    if (this.replacement) {
      const cum = new Float64Array(w.length);
      let total = 0;
      for (let i = 0; i < w.length; i++) cum[i] = total += w[i]!;
      for (let s = 0; s < this.length; s++) {
        // The first index whose cumulative weight exceeds u; zero weights have zero width and are never hit.
        const u = g.uniform() * total;
        let lo = 0;
        let hi = w.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (cum[mid]! > u) hi = mid;
          else lo = mid + 1;
        }
        yield lo;
      }
      return;
    }
    // Efraimidis-Spirakis: the k smallest of Exp(1)/w_i, in increasing order, are distributed as k
    // successive draws without replacement. One sort instead of k renormalisations.
    const keys = new Float64Array(w.length);
    for (let i = 0; i < w.length; i++) {
      // Zero weights go last explicitly: Exp(1) can be 0, and 0 / 0 would be NaN.
      keys[i] = w[i] === 0 ? Number.POSITIVE_INFINITY : -Math.log(1 - g.uniform()) / w[i]!;
    }
    const order = Array.from(keys.keys()).sort((a, b) => keys[a]! - keys[b]!);
    yield* order.slice(0, this.length);
  }
}

/**
 * Groups another sampler's indices into `Int32Array` batches of `batchSize`; the last is shorter unless
 * `dropLast`. length = floor(n / batchSize) with `dropLast`, ceil otherwise.
 *
 * @example
 * [...new BatchSampler(new SequentialSampler(5), 2, false)]; // [0,1] [2,3] [4]
 * [...new BatchSampler(new SequentialSampler(5), 2, true)];  // [0,1] [2,3]
 */
export class BatchSampler implements Sampler<Int32Array> {
  constructor(
    readonly sampler: Sampler,
    readonly batchSize: number,
    readonly dropLast = false,
  ) {
    checkPositive('BatchSampler', 'batch_size', batchSize);
    if (typeof dropLast !== 'boolean') {
      throw new ValueError(
        'BatchSampler',
        `drop_last should be a boolean value, but got drop_last=${dropLast}`,
      );
    }
  }

  get length(): number {
    return batchCount(this.sampler.length, this.batchSize, this.dropLast);
  }

  setEpoch(epoch: number): void {
    this.sampler.setEpoch?.(epoch);
  }

  *[Symbol.iterator](): Iterator<Int32Array> {
    let batch = new Int32Array(this.batchSize);
    let k = 0;
    for (const index of this.sampler) {
      batch[k++] = index;
      if (k === this.batchSize) {
        yield batch;
        batch = new Int32Array(this.batchSize);
        k = 0;
      }
    }
    if (k > 0 && !this.dropLast) yield batch.slice(0, k);
  }
}

/** Batch size for a step: a list (its last entry repeats) or a function of (epoch, step in the epoch). */
export type BatchSizes = readonly number[] | ((epoch: number, step: number) => number);

/**
 * Like `BatchSampler`, but each batch's size comes from `sizes`: a list indexed by step (the last entry
 * repeats), or a function of (epoch, step), e.g. `batchSizeSchedule()`. The epoch is the one given to
 * `setEpoch`, else one more than the last epoch iterated (0 first); `length` is for that coming epoch.
 *
 * @example
 * [...new VariableBatchSampler(new SequentialSampler(6), [1, 2])]; // [0] [1,2] [3,4] [5]
 * new VariableBatchSampler(sampler, batchSizeSchedule({ initial: 32, max: 256 }));
 */
export class VariableBatchSampler implements Sampler<Int32Array> {
  private nextEpoch = 0;

  constructor(
    readonly sampler: Sampler,
    readonly sizes: BatchSizes,
    readonly dropLast = false,
  ) {
    if (typeof dropLast !== 'boolean') {
      throw new ValueError(
        'VariableBatchSampler',
        `drop_last should be a boolean value, but got drop_last=${dropLast}`,
      );
    }
    if (typeof sizes !== 'function') {
      if (sizes.length === 0) throw new ValueError('VariableBatchSampler', 'sizes must not be empty');
      for (const s of sizes) checkPositive('VariableBatchSampler', 'batch_size', s);
    }
  }

  private sizeAt(epoch: number, step: number): number {
    const s =
      typeof this.sizes === 'function'
        ? this.sizes(epoch, step)
        : this.sizes[Math.min(step, this.sizes.length - 1)]!;
    checkPositive('VariableBatchSampler', 'batch_size', s);
    return s;
  }

  get length(): number {
    let rest = this.sampler.length;
    let steps = 0;
    while (rest > 0) {
      const s = this.sizeAt(this.nextEpoch, steps);
      if (s > rest && this.dropLast) break;
      rest -= s;
      steps++;
    }
    return steps;
  }

  setEpoch(epoch: number): void {
    this.nextEpoch = epoch;
    this.sampler.setEpoch?.(epoch);
  }

  *[Symbol.iterator](): Iterator<Int32Array> {
    const epoch = this.nextEpoch++;
    let step = 0;
    // A batch's size is asked for when its first index arrives: never one past the data (a schedule may end
    // there, with 0 or a huge size).
    let batch: Int32Array | null = null;
    let k = 0;
    for (const index of this.sampler) {
      batch ??= new Int32Array(this.sizeAt(epoch, step));
      batch[k++] = index;
      if (k === batch.length) {
        yield batch;
        batch = null;
        step++;
        k = 0;
      }
    }
    if (batch && k > 0 && !this.dropLast) yield batch.slice(0, k);
  }
}

/** Options of `BucketBatchSampler`. */
export interface BucketOptions extends RandomOptions {
  /** Shuffle before bucketing and shuffle the batch order (default true). */
  shuffle?: boolean;
  /** Drop the one short batch (default false). */
  dropLast?: boolean;
  /** Samples per bucket, a multiple of batchSize (default 100 batches). */
  bucketSize?: number;
}
const BUCKET_OPTIONS = optionKeys<BucketOptions>()([
  'shuffle',
  'dropLast',
  'bucketSize',
  'seed',
  'generator',
]);

/**
 * Batches of sequences of similar length, so padding to the longest in a batch wastes little. Each epoch:
 * shuffle the indices, cut them into buckets of `bucketSize`, sort each bucket by length, cut it into
 * batches, and shuffle the order of all batches. Because buckets hold whole batches, only the final
 * bucket can leave a short batch, so length is floor or ceil of n / batchSize as for `BatchSampler`.
 * Without `shuffle` the buckets are consecutive runs of 0..n-1 and the batches come in order.
 *
 * @example
 * const s = new BucketBatchSampler([5, 1, 4, 2], 2, { shuffle: false });
 * [...s]; // [1,3] [2,0]: lengths [1,2] and [4,5]
 */
export class BucketBatchSampler implements Sampler<Int32Array> {
  readonly length: number;
  private readonly lengths: Float64Array;
  private readonly shuffle: boolean;
  private readonly dropLast: boolean;
  private readonly bucketSize: number;
  private readonly nextGenerator: () => Generator;

  constructor(
    lengths: ArrayLike<number>,
    readonly batchSize: number,
    options: BucketOptions = {},
  ) {
    const op = 'BucketBatchSampler';
    checkOptions(op, options, BUCKET_OPTIONS);
    checkPositive(op, 'batch_size', batchSize);
    this.lengths = Float64Array.from(lengths);
    if (this.lengths.some((l) => Number.isNaN(l))) throw new ValueError(op, 'lengths must not contain NaN');
    this.shuffle = options.shuffle ?? true;
    this.dropLast = options.dropLast ?? false;
    this.bucketSize = options.bucketSize ?? batchSize * 100;
    if (!Number.isSafeInteger(this.bucketSize) || this.bucketSize <= 0 || this.bucketSize % batchSize !== 0) {
      throw new ValueError(
        op,
        `bucketSize must be a positive multiple of batchSize (got ${this.bucketSize}, batchSize ${batchSize})`,
      );
    }
    this.length = batchCount(this.lengths.length, batchSize, this.dropLast);
    this.nextGenerator = epochGenerators(op, options);
  }

  *[Symbol.iterator](): Iterator<Int32Array> {
    const n = this.lengths.length;
    const g = this.shuffle ? this.nextGenerator() : undefined;
    const order = g ? g.permutation(n) : Int32Array.from({ length: n }, (_, i) => i);
    const batches: Int32Array[] = [];
    for (let start = 0; start < n; start += this.bucketSize) {
      // Typed-array sort is stable, so equal lengths keep their (shuffled) order.
      const bucket = order
        .slice(start, start + this.bucketSize)
        .sort((a, b) => this.lengths[a]! - this.lengths[b]!);
      for (let b = 0; b < bucket.length; b += this.batchSize)
        batches.push(bucket.slice(b, b + this.batchSize));
    }
    if (this.dropLast && batches.length > 0 && batches[batches.length - 1]!.length < this.batchSize)
      batches.pop();
    if (!g) {
      yield* batches;
      return;
    }
    for (const p of g.permutation(batches.length)) yield batches[p]!;
  }
}

/**
 * The seed's `get_batch_size` (batch-processing.md §6): start at `initial`, double every `every` epochs,
 * never above `max`. `min(initial * 2 ** floor(epoch / every), max)`.
 *
 * @example
 * const bs = batchSizeSchedule({ initial: 32, max: 256 });
 * [0, 9, 10, 20, 30, 99].map(bs); // [32, 32, 64, 128, 256, 256]
 */
export function batchSizeSchedule(
  options: { initial?: number; max?: number; every?: number } = {},
): (epoch: number) => number {
  const { initial = 32, max = 256, every = 10 } = options;
  checkPositive('batchSizeSchedule', 'initial', initial);
  checkPositive('batchSizeSchedule', 'max', max);
  checkPositive('batchSizeSchedule', 'every', every);
  return (epoch) => Math.min(initial * 2 ** Math.floor(epoch / every), max);
}
