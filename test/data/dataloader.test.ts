/** DataLoader in this thread (numWorkers 0): batches, orders, options. Workers: dataloader-workers.test.ts. */
// The package entry first: importing src/tensor/ops.js before it trips the tensor/autograd import cycle.
import '../../src/index.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { padCollate } from '../../src/data/collate.js';
import { DataLoader, type DataLoaderOptions } from '../../src/data/dataloader.js';
import { type IterableDataset, readsBatches, Subset } from '../../src/data/dataset.js';
import {
  BatchSampler,
  BucketBatchSampler,
  batchSizeSchedule,
  RandomSampler,
  SequentialSampler,
  VariableBatchSampler,
} from '../../src/data/sampler.js';
import * as mb from '../../src/index.js';
import { Augmented, Range, Rows, Sequences, Stream } from './loader-datasets.js';

const ints = (t: mb.Tensor | undefined) => [...t!.toTypedArray()];
const labels = (loader: Iterable<mb.Tensor[]>) => [...loader].map((b) => ints(b[1]));

describe('DataLoader batches', () => {
  it('has exact counts and contents for every size and dropLast, through getItems and collate', async () => {
    for (const n of [0, 1, 7, 10]) {
      for (let batchSize = 1; batchSize <= n + 2; batchSize++) {
        for (const dropLast of [false, true]) {
          const expected: number[][] = [];
          for (let s = 0; s < n; s += batchSize) {
            const batch = Array.from({ length: Math.min(batchSize, n - s) }, (_, k) => s + k);
            if (batch.length === batchSize || !dropLast) expected.push(batch);
          }
          const label = `n=${n} batchSize=${batchSize} dropLast=${dropLast}`;
          const gathered = new DataLoader(new Rows(n), { batchSize, dropLast });
          const collated = new DataLoader(new Range(n), { batchSize, dropLast });
          assert.equal(
            gathered.length,
            dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize),
            label,
          );
          assert.equal(collated.length, gathered.length, label);
          assert.deepEqual(labels(gathered), expected, label);
          assert.deepEqual(labels(collated), expected, label);
          const viaAwait: number[][] = [];
          for await (const [, y] of collated) viaAwait.push(ints(y));
          assert.deepEqual(viaAwait, expected, `${label} (for await)`);
        }
      }
    }
  });

  it("reads a subclass's getItem (augmentation), not the getItems it inherits, also through Subset", () => {
    const rows = (n: number, plus: number) => Array.from({ length: n * 3 }, (_, k) => k + plus);
    const aug = new Augmented(4);
    assert.equal(readsBatches(aug), false);
    assert.equal(readsBatches(new Rows(4)), true);
    const [[x, y]] = [...new DataLoader(aug, { batchSize: 4 })];
    assert.deepEqual(ints(x), rows(4, 100));
    assert.deepEqual(ints(y), [0, 1, 2, 3]);
    const sub = new Subset(aug, [2, 0]);
    assert.equal(sub.getItems, undefined, 'a Subset reads the samples through getItem too');
    assert.deepEqual(ints([...new DataLoader(sub, { batchSize: 2 })][0]![0]), [106, 107, 108, 100, 101, 102]);
    // A collate option is used, not refused as it is next to a getItems that would be read.
    const firstRows = (samples: [mb.Tensor, mb.Tensor][]) => samples.map(([r]) => r);
    const [[first]] = [...new DataLoader(aug, { batchSize: 2, collate: firstRows })];
    assert.deepEqual(ints(first), [100, 101, 102]);
    class Doubled extends Subset<[mb.Tensor, mb.Tensor], [mb.Tensor, mb.Tensor]> {
      override getItem(i: number): [mb.Tensor, mb.Tensor] {
        const [r, label] = super.getItem(i);
        return [mb.mul(r, 2), label];
      }
    }
    const doubled = new Doubled(new Rows(4), [1]);
    assert.deepEqual(ints([...new DataLoader(doubled)][0]![0]), [6, 8, 10], 'a Subset subclass too');
  });

  it('collates getItem samples batch-first: rows (N, 2) float32, labels (N) int32', () => {
    const [[x, y]] = [...new DataLoader(new Range(3), { batchSize: 3 })];
    assert.deepEqual(x!.shape, [3, 2]);
    assert.deepEqual(ints(x), [0, -0, 1, -1, 2, -2]);
    assert.equal(y!.dtype, 'int32');
  });
});

describe('DataLoader shuffle', () => {
  it('visits each sample once per epoch, in an order reproducible by seed and new each epoch', () => {
    const epochs = (seed: number) => {
      const loader = new DataLoader(new Rows(50), { batchSize: 8, shuffle: true, seed });
      return [0, 1, 2].map(() => labels(loader).flat());
    };
    const a = epochs(3);
    for (const order of a) {
      assert.deepEqual(
        [...order].sort((p, q) => p - q),
        Array.from({ length: 50 }, (_, i) => i),
      );
    }
    assert.notDeepEqual(a[0], a[1]);
    assert.notDeepEqual(a[1], a[2]);
    assert.deepEqual(epochs(3), a, 'same seed, same sequence of epochs');
    assert.notDeepEqual(epochs(4)[0], a[0]);
  });

  it('without a seed follows manualSeed', () => {
    const run = () => {
      mb.manualSeed(11);
      return labels(new DataLoader(new Rows(20), { batchSize: 5, shuffle: true })).flat();
    };
    assert.deepEqual(run(), run());
  });

  it('takes a sampler or a batch sampler instead', () => {
    const sampler = new RandomSampler(10, { seed: 0 });
    assert.deepEqual(labels(new DataLoader(new Rows(10), { sampler, batchSize: 10 })).flat(), [
      ...new RandomSampler(10, { seed: 0 }),
    ]);
    const batchSampler = [Int32Array.of(2, 0), Int32Array.of(1)];
    const loader = new DataLoader(new Rows(3), { batchSampler: Object.assign(batchSampler, { length: 2 }) });
    assert.deepEqual(labels(loader), [[2, 0], [1]]);
  });
});

describe('DataLoader variable and bucketed batches', () => {
  it('follows a batch-size schedule through VariableBatchSampler and setEpoch', () => {
    const schedule = batchSizeSchedule({ initial: 2, max: 8, every: 1 });
    const loader = new DataLoader(new Rows(20), {
      batchSampler: new VariableBatchSampler(new SequentialSampler(20), schedule),
    });
    const sizes = (epoch: number) => {
      loader.setEpoch(epoch);
      const length = loader.length;
      const s = labels(loader).map((b) => b.length);
      assert.equal(s.length, length, `length of epoch ${epoch}`);
      return s;
    };
    assert.deepEqual(sizes(0), new Array(10).fill(2));
    assert.deepEqual(sizes(1), [4, 4, 4, 4, 4]);
    assert.deepEqual(sizes(3), [8, 8, 4]);
  });

  it('pads bucketed sequences to the longest in each batch, with a mask', () => {
    const ds = new Sequences(40);
    const lengths = Array.from({ length: 40 }, (_, i) => ds.lengthOf(i));
    const loader = new DataLoader(ds, {
      batchSampler: new BucketBatchSampler(lengths, 4, { seed: 0, bucketSize: 40 }),
      collate: padCollate,
    });
    let seen = 0;
    for (const [x, mask, y] of loader) {
      const ids = ints(y);
      const T = Math.max(...ids.map((i) => ds.lengthOf(i)));
      assert.deepEqual(x!.shape, [ids.length, T, 2]);
      // Buckets sort by length, so each batch holds one length and needs no padding at all.
      assert.ok(
        ids.every((i) => ds.lengthOf(i) === T),
        `batch ${ids} mixes lengths`,
      );
      assert.deepEqual(ints(mask), new Array(ids.length * T).fill(1));
      assert.deepEqual(
        ids.map((_, b) => x!.toTypedArray()[b * T * 2]),
        ids,
      );
      seen += ids.length;
    }
    assert.equal(seen, 40);
    const [[x, mask]] = [
      ...new DataLoader(ds, {
        batchSampler: Object.assign([Int32Array.of(0, 3)], { length: 1 }),
        collate: padCollate,
      }),
    ];
    assert.deepEqual(x!.shape, [2, 4, 2]);
    assert.deepEqual(ints(mask), [1, 0, 0, 0, 1, 1, 1, 1]);
  });
});

describe('DataLoader over an IterableDataset', () => {
  const numbers = (n: number): IterableDataset<number> & { length: number } => ({
    length: n,
    *[Symbol.iterator]() {
      for (let i = 0; i < n; i++) yield i;
    },
  });

  it('batches the stream in order, with ceil or floor as its length', async () => {
    const all = new DataLoader<mb.Tensor>(numbers(7), { batchSize: 3 });
    assert.equal(all.length, 3);
    assert.deepEqual([...all].map(ints), [[0, 1, 2], [3, 4, 5], [6]]);
    const dropped = new DataLoader<mb.Tensor>(numbers(7), { batchSize: 3, dropLast: true });
    assert.equal(dropped.length, 2);
    assert.deepEqual([...dropped].map(ints), [
      [0, 1, 2],
      [3, 4, 5],
    ]);
    const out: number[][] = [];
    for await (const b of new DataLoader<mb.Tensor>(new Stream(5), { batchSize: 2 })) out.push(ints(b));
    assert.deepEqual(out, [[0, 1], [2, 3], [4]]);
  });

  it('refuses a one-shot iterator, which the first epoch would drain and leave every later one empty', () => {
    const oneShot = (make: string) =>
      `DataLoader: the dataset is a one-shot iterator: pass an object whose ${make} makes a new iterator each epoch, e.g. `;
    function* generate() {
      yield 1;
    }
    async function* generateAsync() {
      yield 1;
    }
    assert.throws(() => new DataLoader(generate()), {
      name: 'ValueError',
      message: `${oneShot('[Symbol.iterator]()')}{ *[Symbol.iterator]() { ... } }`,
    });
    assert.throws(() => new DataLoader(new Map([[1, 2]]).values()), { name: 'ValueError' });
    assert.throws(() => new DataLoader(generateAsync()), {
      name: 'ValueError',
      message: `${oneShot('[Symbol.asyncIterator]()')}{ async *[Symbol.asyncIterator]() { ... } }`,
    });
    const restartable = new DataLoader<mb.Tensor>({
      *[Symbol.iterator]() {
        yield* generate();
      },
    });
    assert.deepEqual([[...restartable].map(ints), [...restartable].map(ints)], [[[1]], [[1]]]);
  });

  it('rejects sampling options, a length it does not know, and for...of over an async stream', () => {
    assert.throws(() => new DataLoader(numbers(3), { shuffle: true }), {
      message:
        'DataLoader: DataLoader with IterableDataset: expected unspecified shuffle option, but got shuffle=true',
    });
    assert.throws(() => new DataLoader(numbers(3), { sampler: new SequentialSampler(3) }), {
      message:
        'DataLoader: DataLoader with IterableDataset: expected unspecified sampler option, but got sampler=SequentialSampler',
    });
    const endless = { *[Symbol.iterator]() {} };
    assert.throws(() => new DataLoader(endless).length, {
      message: 'DataLoader: the IterableDataset has no length',
    });
    assert.throws(() => [...new DataLoader({ async *[Symbol.asyncIterator]() {} })], {
      name: 'StateError',
      message: 'DataLoader: the dataset is an async iterable; iterate with for await',
    });
  });
});

describe('DataLoader options', () => {
  const rejects = (options: DataLoaderOptions, message: string) =>
    assert.throws(() => new DataLoader(new Range(4), options), {
      name: 'ValueError',
      message: `DataLoader: ${message}`,
    });

  it("rejects conflicting options with PyTorch's wording", () => {
    const sampler = new SequentialSampler(4);
    const batchSampler = Object.assign([Int32Array.of(0)], { length: 1 });
    rejects({ sampler, shuffle: true }, 'sampler option is mutually exclusive with shuffle');
    const exclusive =
      'batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last';
    rejects({ batchSampler, batchSize: 2 }, exclusive);
    rejects({ batchSampler, shuffle: true }, exclusive);
    rejects({ batchSampler, sampler }, exclusive);
    rejects({ batchSampler, dropLast: true }, exclusive);
    rejects(
      { numWorkers: -1 },
      'num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.',
    );
    rejects({ timeout: -1 }, 'timeout option should be non-negative');
    rejects(
      { prefetchFactor: 2 },
      'prefetch_factor option could only be specified in multiprocessing. Let num_workers > 0 to enable multiprocessing, otherwise leave prefetch_factor unset.',
    );
    rejects(
      { numWorkers: 1, prefetchFactor: 0 },
      'prefetch_factor should be a positive integer value, but got prefetch_factor=0',
    );
    rejects({ persistentWorkers: true }, 'persistent_workers option needs num_workers > 0');
    rejects({ reuseBuffers: true }, 'reuseBuffers option needs num_workers > 0');
    rejects({ batchSize: 0 }, 'batch_size should be a positive integer value, but got batch_size=0');
    rejects({ seed: 1, generator: new mb.Generator(1) }, 'give either seed or generator, not both');
    rejects(
      { batch_size: 4 } as DataLoaderOptions,
      "unknown option 'batch_size' (expected one of batchSize, shuffle, dropLast, sampler, batchSampler, collate, numWorkers, prefetchFactor, persistentWorkers, timeout, reuseBuffers, seed, generator; did you mean 'batchSize'?)",
    );
  });

  it('rejects what cannot work: a collate next to getItems, workers without a spec, a relative module', () => {
    assert.throws(() => new DataLoader(new Rows(4), { collate: padCollate }), {
      message:
        'DataLoader: the dataset has getItems, which returns whole batches, so a collate option would never be used',
    });
    const plain = { length: 4, getItem: (i: number) => i };
    assert.throws(() => new DataLoader(plain, { numWorkers: 1 }), {
      message:
        'DataLoader: numWorkers > 0 needs the dataset to have a spec ({ module, export, args }) to build it in each worker, since objects cannot cross threads',
    });
    // A batched dataset (a TensorDataset) is told that workers would not help it.
    const tds = new mb.TensorDataset(mb.zeros([4, 3]), mb.zeros([4]));
    assert.throws(() => new DataLoader(tds, { numWorkers: 1 }), {
      message:
        /cannot cross threads: its batches are one gather each on this thread already, so numWorkers: 0 loses nothing$/,
    });
    assert.throws(
      () => new DataLoader(new Range(4), { numWorkers: 1, collate: Object.assign((s: never[]) => s, {}) }),
      { message: /needs the collate function to have a spec/ },
    );
    const relative = { ...plain, spec: { module: './x.js', export: 'X' } };
    assert.throws(() => new DataLoader(relative, { numWorkers: 1 }), {
      message:
        "DataLoader: a spec's module must be an absolute URL such as new URL('./my-dataset.js', import.meta.url).href (got './x.js')",
    });
  });

  it('iterates with for...of only in this thread', () => {
    const loader = new DataLoader(new Range(4), { numWorkers: 1 });
    assert.throws(() => [...loader], {
      name: 'StateError',
      message:
        'DataLoader: a for...of loop runs in this thread, so it needs numWorkers 0 (got 1); use for await',
    });
  });
});

describe('DataLoader options as PyTorch checks them', () => {
  it('a seed must be an integer and a generator a Generator; a plain array is a map-style dataset', () => {
    const ds = { length: 10, getItem: (i: number) => i };
    assert.throws(
      () => new DataLoader(ds, { shuffle: true, seed: 1.5 }),
      /DataLoader: seed should be an integer \(got 1.5\)/,
    );
    assert.throws(
      () => new DataLoader(ds, { shuffle: true, generator: 3 as unknown as mb.Generator }),
      /DataLoader: generator should be a Generator \(got number\)/,
    );
    // PyTorch: DataLoader([10, ..., 14], batch_size=2, sampler=[4, 3, 2, 1, 0]) gives [[14, 13], [12, 11], [10]]
    const fromArray = new DataLoader([10, 11, 12, 13, 14], { batchSize: 2, sampler: [4, 3, 2, 1, 0] });
    assert.deepEqual(
      [...fromArray].map((b) => ints(b as unknown as mb.Tensor)),
      [[14, 13], [12, 11], [10]],
    );
    assert.equal(new DataLoader([1, 2, 3], { batchSize: 2, shuffle: true, seed: 0 }).length, 2);
  });

  it('batchSampler with the default batchSize 1 given is accepted; samplers check their options; indices are integers', () => {
    const ds = { length: 5, getItem: (i: number) => i };
    assert.equal(
      new DataLoader(ds, { batchSampler: new BatchSampler(new SequentialSampler(5), 2, false), batchSize: 1 })
        .length,
      3,
    );
    assert.throws(
      () =>
        new DataLoader(ds, {
          batchSampler: new BatchSampler(new SequentialSampler(5), 2, false),
          batchSize: 2,
        }),
      /batch_sampler option is mutually exclusive with batch_size/,
    );
    assert.throws(
      () => new RandomSampler(3, { replacement: 'no' as unknown as boolean }),
      /RandomSampler: replacement should be a boolean value, but got replacement=no/,
    );
    assert.throws(
      () => new RandomSampler(3, { numsamples: 2 } as object),
      /RandomSampler: unknown option 'numsamples' \(expected one of replacement, numSamples, seed, generator\)/,
    );
    assert.throws(
      () => [...new DataLoader(ds, { batchSampler: [[1.7, 2.2]] })],
      /DataLoader: indices must be integers \(got 1.7\)/,
    );
  });
});
