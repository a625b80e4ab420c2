/**
 * Datasets for the DataLoader tests, in a module of their own so that worker threads can import them.
 * Each carries a spec pointing at this module's compiled file (build/test/data/loader-datasets.js): the
 * workers import compiled JavaScript, so the URL comes from import.meta.url, never from the .ts path.
 */
import { defaultCollate } from '../../src/data/collate.js';
import type { Dataset, ModuleSpec } from '../../src/data/dataset.js';
import { TensorDataset, workerInfo } from '../../src/data/dataset.js';
import { tensor } from '../../src/tensor/creation.js';
import { add, stack } from '../../src/tensor/ops.js';
import { defaultGenerator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const spec = (name: string, args: unknown[]): ModuleSpec => ({ module: import.meta.url, export: name, args });

/** Blocks this thread for `ms` (a worker that is slow, or hangs). */
function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Sample i is `[Float32Array [i, -i], i]`: contents say which index a batch holds. `delays[i % delays.length]`
 * milliseconds per sample make some workers slower than others; `counter` (shared memory) counts getItem
 * calls across threads. `throwLaterAt` throws a string just after the fetch, an uncaught exception that kills
 * the worker (a thrown value that is not an Error, so it has no message).
 */
export class Range implements Dataset<[Float32Array, number]> {
  readonly spec: ModuleSpec;
  private readonly counter: Int32Array | undefined;

  constructor(
    readonly length: number,
    readonly options: {
      delays?: number[];
      counter?: SharedArrayBuffer;
      failAt?: number;
      exitAt?: number;
      hangAt?: number;
      throwLaterAt?: number;
    } = {},
  ) {
    this.spec = spec('Range', [length, options]);
    this.counter = options.counter && new Int32Array(options.counter);
  }

  getItem(i: number): [Float32Array, number] {
    const { delays, failAt, exitAt, hangAt, throwLaterAt } = this.options;
    if (this.counter) Atomics.add(this.counter, 0, 1);
    if (delays) sleep(delays[i % delays.length]!);
    if (i === failAt) throw new RangeError(`bad sample ${i}`);
    if (i === exitAt) process.exit(3);
    if (i === hangAt) sleep(60_000);
    if (i === throwLaterAt)
      process.nextTick(() => {
        throw `bad sample ${i}`;
      });
    return [Float32Array.of(i, -i), i];
  }
}

/** Rows of arange as a TensorDataset that workers can rebuild: X[i] = [3i, 3i+1, 3i+2], y[i] = i. */
export class Rows extends TensorDataset<[Tensor, Tensor]> {
  readonly spec: ModuleSpec;

  constructor(n: number) {
    super(
      tensor(
        Float32Array.from({ length: n * 3 }, (_, k) => k),
        { shape: [n, 3] },
      ),
      tensor(Int32Array.from({ length: n }, (_, i) => i)),
    );
    this.spec = spec('Rows', [n]);
  }
}

/** Rows with augmentation: getItem adds 100 to the row, which the inherited getItems knows nothing of. */
export class Augmented extends Rows {
  override readonly spec: ModuleSpec;

  constructor(n: number) {
    super(n);
    this.spec = spec('Augmented', [n]);
  }

  override getItem(i: number): [Tensor, Tensor] {
    const [x, y] = super.getItem(i);
    return [add(x, 100), y];
  }
}

/** Sample i records which worker made it and draws from that worker's default generator. */
export class Seeds implements Dataset<[number, number, string, string]> {
  readonly spec: ModuleSpec;

  constructor(readonly length: number) {
    this.spec = spec('Seeds', [length]);
  }

  getItem(i: number): [number, number, string, string] {
    const info = workerInfo();
    return [i, info?.id ?? -1, String(info?.seed), String(defaultGenerator.nextUint32())];
  }
}

/** A stream of 0..n-1 sharded across workers (worker w yields w, w + W, ...); async to test for await. */
export class Stream {
  readonly spec: ModuleSpec;

  constructor(readonly length: number) {
    this.spec = spec('Stream', [length]);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<number> {
    const { id, numWorkers } = workerInfo() ?? { id: 0, numWorkers: 1 };
    for (let i = id; i < this.length; i += numWorkers) yield i;
  }
}

/** Sequences of length 1 + (i % 5) with 2 features, all equal to i, and label i: for padding. */
export class Sequences implements Dataset<[Tensor, number]> {
  readonly spec: ModuleSpec;

  constructor(readonly length: number) {
    this.spec = spec('Sequences', [length]);
  }

  lengthOf(i: number): number {
    return 1 + (i % 5);
  }

  getItem(i: number): [Tensor, number] {
    const T = this.lengthOf(i);
    return [tensor(new Float32Array(T * 2).fill(i), { shape: [T, 2] }), i];
  }
}

/** A batch as a class instance, made by `batchCollate` from Range samples. */
export class Batch {
  constructor(
    readonly x: Tensor,
    readonly y: Tensor,
  ) {}
}

export const batchCollate = Object.assign(
  (samples: [Float32Array, number][]) =>
    new Batch(
      stack(
        samples.map(([x]) => tensor(x)),
        0,
      ),
      defaultCollate(samples.map(([, y]) => y)),
    ),
  { spec: spec('batchCollate', []) },
);

/** A batch holding a function, which structured clone cannot send between threads. */
export const functionCollate = Object.assign(
  (samples: [Float32Array, number][]) => [defaultCollate(samples.map(([, y]) => y)), () => 1],
  { spec: spec('functionCollate', []) },
);
