import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  BatchSampler,
  BucketBatchSampler,
  batchSizeSchedule,
  RandomSampler,
  type Sampler,
  SequentialSampler,
  SubsetRandomSampler,
  VariableBatchSampler,
  WeightedRandomSampler,
} from '../../src/data/sampler.js';
import { Generator, manualSeed } from '../../src/tensor/random.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const sorted = (xs: Iterable<number>) => [...xs].sort((a, b) => a - b);
const lists = (batches: Iterable<Int32Array>) => [...batches].map((b) => [...b]);

/** Counts of each value in 0..n-1. */
function histogram(xs: Iterable<number>, n: number): number[] {
  const counts = new Array(n).fill(0);
  for (const x of xs) counts[x]++;
  return counts;
}

describe('SequentialSampler', () => {
  it('yields 0..n-1 for a number or anything with a length', () => {
    assert.deepEqual([...new SequentialSampler(4)], [0, 1, 2, 3]);
    assert.deepEqual([...new SequentialSampler(['a', 'b'])], [0, 1]);
    assert.equal(new SequentialSampler(7).length, 7);
    assert.deepEqual([...new SequentialSampler(0)], []);
    assert.throws(() => new SequentialSampler(-1), {
      name: 'ValueError',
      message: 'SequentialSampler: data source length must be a non-negative integer (got -1)',
    });
  });
});

describe('BatchSampler', () => {
  it('yields the exact batches for each size and dropLast', () => {
    const cases: [number, number, boolean, number[][]][] = [
      [10, 3, false, [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]],
      [
        10,
        3,
        true,
        [
          [0, 1, 2],
          [3, 4, 5],
          [6, 7, 8],
        ],
      ],
      [
        9,
        3,
        false,
        [
          [0, 1, 2],
          [3, 4, 5],
          [6, 7, 8],
        ],
      ],
      [
        9,
        3,
        true,
        [
          [0, 1, 2],
          [3, 4, 5],
          [6, 7, 8],
        ],
      ],
      [2, 3, false, [[0, 1]]],
      [2, 3, true, []],
      [3, 1, false, [[0], [1], [2]]],
      [3, 1, true, [[0], [1], [2]]],
      [0, 4, false, []],
      [0, 4, true, []],
      [5, 5, false, [[0, 1, 2, 3, 4]]],
      [5, 6, false, [[0, 1, 2, 3, 4]]],
    ];
    for (const [n, size, dropLast, expected] of cases) {
      const s = new BatchSampler(new SequentialSampler(n), size, dropLast);
      const batches = [...s];
      assert.ok(batches.every((b) => b instanceof Int32Array));
      assert.deepEqual(lists(batches), expected, `n=${n} batchSize=${size} dropLast=${dropLast}`);
      assert.equal(s.length, expected.length, `length n=${n} batchSize=${size} dropLast=${dropLast}`);
    }
  });

  it('has length floor or ceil of n / batchSize for every combination up to 20', () => {
    for (let n = 0; n <= 20; n++) {
      for (let size = 1; size <= 7; size++) {
        for (const dropLast of [false, true]) {
          const s = new BatchSampler(new SequentialSampler(n), size, dropLast);
          const batches = lists(s);
          const expected = dropLast ? Math.floor(n / size) : Math.ceil(n / size);
          assert.equal(batches.length, expected);
          assert.equal(s.length, expected);
          assert.deepEqual(batches.flat(), range(dropLast ? expected * size : n));
          assert.ok(batches.slice(0, -1).every((b) => b.length === size));
        }
      }
    }
  });

  it('batches a random sampler: each index once per epoch', () => {
    const s = new BatchSampler(new RandomSampler(10, { seed: 3 }), 4, false);
    const batches = lists(s);
    assert.deepEqual(
      batches.map((b) => b.length),
      [4, 4, 2],
    );
    assert.deepEqual(sorted(batches.flat()), range(10));
  });

  it('forwards setEpoch to the inner sampler', () => {
    const seen: number[] = [];
    const inner: Sampler = {
      length: 2,
      setEpoch: (e) => seen.push(e),
      [Symbol.iterator]: () => [0, 1][Symbol.iterator](),
    };
    new BatchSampler(inner, 1).setEpoch(3);
    assert.deepEqual(seen, [3]);
  });

  it("rejects bad arguments with PyTorch's wording", () => {
    const seq = new SequentialSampler(3);
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new BatchSampler(seq, bad), {
        name: 'ValueError',
        message: `BatchSampler: batch_size should be a positive integer value, but got batch_size=${bad}`,
      });
    }
    assert.throws(() => new BatchSampler(seq, 2, 1 as unknown as boolean), {
      message: 'BatchSampler: drop_last should be a boolean value, but got drop_last=1',
    });
  });
});

describe('RandomSampler', () => {
  it('yields a permutation each epoch, different between epochs', () => {
    const s = new RandomSampler(50, { seed: 1 });
    const epochs = [[...s], [...s], [...s]];
    for (const e of epochs) assert.deepEqual(sorted(e), range(50));
    assert.notDeepEqual(epochs[0], epochs[1]);
    assert.notDeepEqual(epochs[1], epochs[2]);
    assert.notDeepEqual(epochs[0], range(50));
  });

  it('repeats the same sequence of epochs for the same seed, another for another seed', () => {
    const a = new RandomSampler(30, { seed: 42 });
    const b = new RandomSampler(30, { seed: 42 });
    const c = new RandomSampler(30, { seed: 43 });
    const ea = [[...a], [...a], [...a]];
    assert.deepEqual([[...b], [...b], [...b]], ea);
    assert.notDeepEqual([...c], ea[0]);
  });

  it('advances a given generator, so restoring its state replays an epoch', () => {
    const g = new Generator(9);
    const s = new RandomSampler(20, { generator: g });
    const state = g.getState();
    const first = [...s];
    assert.notDeepEqual(g.getState(), state);
    g.setState(state);
    assert.deepEqual([...s], first);
  });

  it('without seed or generator draws from the default generator, reproducibly after manualSeed', () => {
    const s = new RandomSampler(20);
    manualSeed(5);
    const run1 = [[...s], [...s]];
    manualSeed(5);
    const run2 = [[...s], [...s]];
    assert.deepEqual(run1, run2);
    assert.notDeepEqual(run1[0], run1[1]);
  });

  it('with numSamples above n yields whole permutations then part of one', () => {
    const s = new RandomSampler(3, { seed: 0, numSamples: 7 });
    const got = [...s];
    assert.equal(s.length, 7);
    assert.equal(got.length, 7);
    assert.deepEqual(sorted(got.slice(0, 3)), [0, 1, 2]);
    assert.deepEqual(sorted(got.slice(3, 6)), [0, 1, 2]);
    assert.ok(got[6]! >= 0 && got[6]! < 3);
    assert.deepEqual(sorted(histogram(got, 3)), [2, 2, 3]);
  });

  it('with replacement draws uniformly', () => {
    const s = new RandomSampler(4, { seed: 11, replacement: true, numSamples: 40000 });
    const got = [...s];
    assert.equal(got.length, 40000);
    for (const c of histogram(got, 4)) assert.ok(Math.abs(c / 40000 - 0.25) < 0.01, `count ${c}`);
    // Replacement means repeats within a short run too.
    assert.ok(new Set(got.slice(0, 10)).size < 10);
  });

  it('rejects bad arguments', () => {
    assert.throws(() => new RandomSampler(0), {
      message: 'RandomSampler: num_samples should be a positive integer value, but got num_samples=0',
    });
    assert.throws(() => new RandomSampler(0, { numSamples: 3, replacement: true }), {
      message: 'RandomSampler: cannot sample from an empty data source',
    });
    assert.throws(() => new RandomSampler(5, { numSamples: 2.5 }), {
      message: 'RandomSampler: num_samples should be a positive integer value, but got num_samples=2.5',
    });
    assert.throws(() => new RandomSampler(5, { seed: 1, generator: new Generator(1) }), {
      message: 'RandomSampler: give either seed or generator, not both',
    });
    assert.throws(() => new RandomSampler(5, { seed: 0.5 }), {
      message: 'RandomSampler: seed should be an integer (got 0.5)',
    });
  });
});

describe('SubsetRandomSampler', () => {
  it('yields exactly the given indices in a fresh order each epoch', () => {
    const indices = range(20).map((i) => 100 + 3 * i);
    const s = new SubsetRandomSampler(indices, { seed: 2 });
    const e1 = [...s];
    const e2 = [...s];
    assert.equal(s.length, 20);
    assert.deepEqual(sorted(e1), indices);
    assert.deepEqual(sorted(e2), indices);
    assert.notDeepEqual(e1, e2);
    const again = new SubsetRandomSampler(indices, { seed: 2 });
    assert.deepEqual([[...again], [...again]], [e1, e2]);
  });

  it('rejects negative or fractional indices', () => {
    assert.throws(() => new SubsetRandomSampler([1, -2]), {
      message: 'SubsetRandomSampler: indices must be non-negative integers (got -2)',
    });
  });
});

describe('WeightedRandomSampler', () => {
  it('draws with replacement in proportion to the weights, never a zero weight', () => {
    const s = new WeightedRandomSampler([0, 1, 2, 7], 100000, { seed: 4 });
    const counts = histogram(s, 4);
    assert.equal(counts[0], 0);
    const expected = [0, 0.1, 0.2, 0.7];
    counts.forEach((c, i) => {
      assert.ok(Math.abs(c / 100000 - expected[i]!) < 0.006, `index ${i}: ${c}`);
    });
  });

  it('is reproducible by seed and differs between epochs', () => {
    const a = new WeightedRandomSampler([1, 1, 1, 1, 1], 30, { seed: 8 });
    const b = new WeightedRandomSampler([1, 1, 1, 1, 1], 30, { seed: 8 });
    const ea = [[...a], [...a]];
    assert.deepEqual([[...b], [...b]], ea);
    assert.notDeepEqual(ea[0], ea[1]);
  });

  it('without replacement yields each positive-weight index at most once, heavier ones first', () => {
    const s = new WeightedRandomSampler([1, 1, 0, 1, 100], 4, { seed: 6, replacement: false });
    let heavyFirst = 0;
    for (let epoch = 0; epoch < 2000; epoch++) {
      const got = [...s];
      assert.deepEqual(sorted(got), [0, 1, 3, 4]);
      if (got[0] === 4) heavyFirst++;
    }
    // P(first draw is index 4) = 100 / 103.
    assert.ok(Math.abs(heavyFirst / 2000 - 100 / 103) < 0.02, `heavy first ${heavyFirst}`);
  });

  it('without replacement, a single draw follows the weights', () => {
    const s = new WeightedRandomSampler([1, 3], 1, { seed: 10, replacement: false });
    let ones = 0;
    for (let epoch = 0; epoch < 20000; epoch++) ones += [...s][0]!;
    assert.ok(Math.abs(ones / 20000 - 0.75) < 0.015, `ones ${ones}`);
  });

  it('rejects bad weights and counts', () => {
    assert.throws(() => new WeightedRandomSampler([1, 2], 0), {
      message: 'WeightedRandomSampler: num_samples should be a positive integer value, but got num_samples=0',
    });
    for (const bad of [[1, -1], [1, Number.NaN], [Number.POSITIVE_INFINITY]]) {
      assert.throws(() => new WeightedRandomSampler(bad, 1), {
        message: 'WeightedRandomSampler: probability tensor contains either `inf`, `nan` or element < 0',
      });
    }
    assert.throws(() => new WeightedRandomSampler([0, 0], 1), {
      message: 'WeightedRandomSampler: invalid multinomial distribution (sum of probabilities <= 0)',
    });
    assert.throws(() => new WeightedRandomSampler([1, 0, 1], 3, { replacement: false }), {
      message: 'WeightedRandomSampler: cannot draw 3 samples without replacement from 2 non-zero weights',
    });
    assert.throws(() => new WeightedRandomSampler([1, 2], 1, { replacement: 'no' as unknown as boolean }), {
      message: 'WeightedRandomSampler: replacement should be a boolean value, but got replacement=no',
    });
  });
});

describe('VariableBatchSampler', () => {
  it('takes sizes from a list whose last entry repeats', () => {
    const s = new VariableBatchSampler(new SequentialSampler(6), [1, 2]);
    assert.equal(s.length, 4);
    assert.deepEqual(lists(s), [[0], [1, 2], [3, 4], [5]]);
    const d = new VariableBatchSampler(new SequentialSampler(6), [1, 2], true);
    assert.equal(d.length, 3);
    assert.deepEqual(lists(d), [[0], [1, 2], [3, 4]]);
  });

  it('asks for a batch size only when a batch starts: a schedule may end with the data', () => {
    const asked: number[] = [];
    const s = new VariableBatchSampler(new SequentialSampler(6), (_epoch, step) => {
      asked.push(step);
      return step < 2 ? 3 : 0;
    });
    assert.deepEqual(lists(s), [
      [0, 1, 2],
      [3, 4, 5],
    ]);
    assert.deepEqual(asked, [0, 1]);
  });

  it('keeps a last batch that fits exactly, with or without dropLast', () => {
    for (const dropLast of [false, true]) {
      const s = new VariableBatchSampler(new SequentialSampler(6), [2, 4], dropLast);
      assert.equal(s.length, 2);
      assert.deepEqual(lists(s), [
        [0, 1],
        [2, 3, 4, 5],
      ]);
    }
  });

  it('calls a size function with (epoch, step), advancing the epoch each iteration', () => {
    const calls: [number, number][] = [];
    const s = new VariableBatchSampler(new SequentialSampler(5), (epoch, step) => {
      calls.push([epoch, step]);
      return epoch + 2;
    });
    assert.equal(s.length, 3);
    assert.deepEqual(lists(s), [[0, 1], [2, 3], [4]]);
    assert.ok(calls.some(([e, step]) => e === 0 && step === 2));
    assert.equal(s.length, 2);
    assert.deepEqual(lists(s), [
      [0, 1, 2],
      [3, 4],
    ]);
    s.setEpoch(5);
    assert.equal(s.length, 1);
    assert.deepEqual(lists(s), [[0, 1, 2, 3, 4]]);
    calls.length = 0;
    [...s];
    assert.deepEqual(calls, [[6, 0]]);
  });

  it('follows batchSizeSchedule across epochs', () => {
    const s = new VariableBatchSampler(
      new SequentialSampler(100),
      batchSizeSchedule({ initial: 32, max: 64, every: 1 }),
    );
    const sizes = () => [...s].map((b) => b.length);
    assert.deepEqual(sizes(), [32, 32, 32, 4]);
    assert.deepEqual(sizes(), [64, 36]);
    assert.deepEqual(sizes(), [64, 36]);
  });

  it('covers a random sampler once per epoch', () => {
    const s = new VariableBatchSampler(new RandomSampler(17, { seed: 3 }), [5, 3]);
    const batches = lists(s);
    assert.deepEqual(
      batches.map((b) => b.length),
      [5, 3, 3, 3, 3],
    );
    assert.deepEqual(sorted(batches.flat()), range(17));
  });

  it('forwards setEpoch and rejects bad sizes', () => {
    const seen: number[] = [];
    const inner: Sampler = {
      length: 1,
      setEpoch: (e) => seen.push(e),
      [Symbol.iterator]: () => [0][Symbol.iterator](),
    };
    new VariableBatchSampler(inner, [1]).setEpoch(2);
    assert.deepEqual(seen, [2]);
    assert.throws(() => new VariableBatchSampler(inner, []), {
      message: 'VariableBatchSampler: sizes must not be empty',
    });
    assert.throws(() => new VariableBatchSampler(inner, [2, 0]), {
      message: 'VariableBatchSampler: batch_size should be a positive integer value, but got batch_size=0',
    });
    const zero = new VariableBatchSampler(new SequentialSampler(3), () => 0);
    assert.throws(() => [...zero], {
      message: 'VariableBatchSampler: batch_size should be a positive integer value, but got batch_size=0',
    });
  });
});

describe('BucketBatchSampler', () => {
  it('without shuffle sorts each bucket by length and keeps batch order', () => {
    assert.deepEqual(lists(new BucketBatchSampler([5, 1, 4, 2], 2, { shuffle: false })), [
      [1, 3],
      [2, 0],
    ]);
    // Buckets of one batch: sorting happens only inside [0,1] and [2,3].
    assert.deepEqual(lists(new BucketBatchSampler([5, 1, 4, 2], 2, { shuffle: false, bucketSize: 2 })), [
      [1, 0],
      [3, 2],
    ]);
    // Equal lengths keep their order (stable sort).
    assert.deepEqual(lists(new BucketBatchSampler([3, 1, 3, 1, 3], 2, { shuffle: false })), [
      [1, 3],
      [0, 2],
      [4],
    ]);
  });

  it('groups similar lengths: far less padding than random batches', () => {
    const g = new Generator(0);
    const lengths = Array.from({ length: 1000 }, () => g.int(1, 1001));
    const s = new BucketBatchSampler(lengths, 10, { seed: 1, bucketSize: 200 });
    const batches = lists(s);
    assert.equal(s.length, 100);
    assert.equal(batches.length, 100);
    assert.deepEqual(sorted(batches.flat()), range(1000));
    const spread = (bs: number[][]) =>
      bs.reduce(
        (acc, b) => acc + Math.max(...b.map((i) => lengths[i]!)) - Math.min(...b.map((i) => lengths[i]!)),
        0,
      ) / bs.length;
    const random = lists(new BatchSampler(new RandomSampler(1000, { seed: 1 }), 10));
    assert.ok(spread(batches) < 60, `bucketed spread ${spread(batches)}`);
    assert.ok(spread(random) > 600, `random spread ${spread(random)}`);
  });

  it('reshuffles each epoch, reproducibly by seed', () => {
    const lengths = range(40).map((i) => i % 7);
    const a = new BucketBatchSampler(lengths, 4, { seed: 5, bucketSize: 8 });
    const b = new BucketBatchSampler(lengths, 4, { seed: 5, bucketSize: 8 });
    const ea = [lists(a), lists(a)];
    assert.deepEqual([lists(b), lists(b)], ea);
    assert.notDeepEqual(ea[0], ea[1]);
    for (const e of ea) assert.deepEqual(sorted(e.flat()), range(40));
  });

  it('has one short batch, dropped with dropLast', () => {
    const lengths = range(25);
    const keep = new BucketBatchSampler(lengths, 10, { seed: 2 });
    assert.equal(keep.length, 3);
    const kept = lists(keep);
    assert.deepEqual(sorted(kept.map((b) => b.length)), [5, 10, 10]);
    assert.deepEqual(sorted(kept.flat()), range(25));
    const drop = new BucketBatchSampler(lengths, 10, { seed: 2, dropLast: true });
    assert.equal(drop.length, 2);
    const dropped = lists(drop);
    assert.deepEqual(
      dropped.map((b) => b.length),
      [10, 10],
    );
    assert.equal(new Set(dropped.flat()).size, 20);
  });

  it('rejects bad arguments', () => {
    assert.throws(() => new BucketBatchSampler([1, 2], 0), {
      message: 'BucketBatchSampler: batch_size should be a positive integer value, but got batch_size=0',
    });
    assert.throws(() => new BucketBatchSampler([1, 2], 10, { bucketSize: 15 }), {
      message:
        'BucketBatchSampler: bucketSize must be a positive multiple of batchSize (got 15, batchSize 10)',
    });
    assert.throws(() => new BucketBatchSampler([1, Number.NaN], 1), {
      message: 'BucketBatchSampler: lengths must not contain NaN',
    });
  });
});

describe('batchSizeSchedule', () => {
  it("matches the seed's get_batch_size (test/fixtures/schedules.json)", () => {
    const fixture = JSON.parse(
      readFileSync(new URL('../../../test/fixtures/schedules.json', import.meta.url), 'utf8'),
    ) as {
      cases: {
        schedule: string;
        options: { initial: number; max: number; every: number };
        values?: number[];
      }[];
    };
    const c = fixture.cases.find((x) => x.schedule === 'seed_batch_size')!;
    const values = c.values!;
    assert.equal(values.length, 50);
    const bs = batchSizeSchedule(c.options);
    assert.deepEqual(
      values.map((_, epoch) => bs(epoch)),
      values,
    );
    const defaults = batchSizeSchedule();
    assert.deepEqual(
      values.map((_, epoch) => defaults(epoch)),
      values,
    );
  });

  it('doubles every `every` epochs up to max', () => {
    const bs = batchSizeSchedule({ initial: 8, max: 50, every: 3 });
    assert.deepEqual(range(12).map(bs), [8, 8, 8, 16, 16, 16, 32, 32, 32, 50, 50, 50]);
    assert.throws(() => batchSizeSchedule({ initial: 0 }), {
      message: 'batchSizeSchedule: initial should be a positive integer value, but got initial=0',
    });
  });
});
