// The package entry first: importing src/tensor/ops.js before it trips the tensor/autograd import cycle.
import '../../src/index.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomSplit, Subset, TensorDataset, workerInfo } from '../../src/data/dataset.js';
import * as mb from '../../src/index.js';
import { Range, Rows } from './loader-datasets.js';

const values = (t: mb.Tensor) => [...t.toTypedArray()];

describe('TensorDataset', () => {
  it('gives rows of every tensor, one gather per tensor for a batch', () => {
    const ds = new Rows(5);
    assert.equal(ds.length, 5);
    const [x, y] = ds.getItem(2);
    assert.deepEqual(values(x), [6, 7, 8]);
    assert.equal(y.item(), 2);
    const [xb, yb] = ds.getItems(Int32Array.of(4, 0));
    assert.deepEqual(xb.shape, [2, 3]);
    assert.deepEqual(values(xb), [12, 13, 14, 0, 1, 2]);
    assert.deepEqual(values(yb), [4, 0]);
    assert.equal(yb.dtype, 'int32');
  });

  it('rejects tensors of different lengths', () => {
    assert.throws(() => new TensorDataset(mb.zeros([4, 2]), mb.zeros([3])), {
      name: 'ValueError',
      message:
        'TensorDataset: size mismatch between tensors (got [3], expected first dimension 4 as in [4,2])',
    });
    assert.throws(() => new TensorDataset(), { message: 'TensorDataset: expected at least one tensor' });
  });
});

describe('Subset', () => {
  it('maps indices, for single samples and batches, and keeps a spec for workers', () => {
    const sub = new Subset(new Rows(6), [5, 1, 3]);
    assert.equal(sub.length, 3);
    assert.equal(sub.getItem(0)[1].item(), 5);
    assert.deepEqual(values(sub.getItems!(Int32Array.of(2, 1))[1]), [3, 1]);
    assert.deepEqual(sub.spec?.args?.[1], Int32Array.of(5, 1, 3));
    assert.equal(new Subset(new Range(3), [0]).getItems, undefined, 'no getItems when the dataset has none');
  });

  it('rejects indices out of range', () => {
    assert.throws(() => new Subset(new Range(3), [0, 3]), {
      message: 'Subset: index 3 is out of range (expected an integer in [0, 3))',
    });
    assert.throws(() => new Subset(new Range(3), [1]).getItem(1), {
      message: 'Subset: index 1 is out of range (expected [0, 1))',
    });
  });
});

describe('randomSplit', () => {
  const indices = (s: Subset) => [...s.indices];

  it('splits into disjoint subsets covering the dataset, reproducibly by seed', () => {
    const ds = new Range(10);
    const [a, b] = randomSplit(ds, [7, 3], { seed: 1 });
    assert.equal(a!.length, 7);
    assert.equal(b!.length, 3);
    assert.deepEqual(
      [...indices(a!), ...indices(b!)].sort((p, q) => p - q),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    const again = randomSplit(ds, [7, 3], { seed: 1 });
    assert.deepEqual(again.map(indices), [indices(a!), indices(b!)]);
    assert.notDeepEqual(randomSplit(ds, [7, 3], { seed: 2 }).map(indices), again.map(indices));
  });

  it('takes fractions, handing out the remainder from the first split (as PyTorch)', () => {
    assert.deepEqual(
      randomSplit(new Range(10), [0.25, 0.25, 0.5], { seed: 0 }).map((s) => s.length),
      [3, 2, 5],
    );
  });

  it('rejects lengths that do not add up', () => {
    assert.throws(() => randomSplit(new Range(10), [5, 4]), {
      name: 'ValueError',
      message:
        'randomSplit: sum of input lengths does not equal the length of the input dataset (got [5, 4], expected counts summing to 10 or fractions summing to 1)',
    });
  });
});

it('workerInfo is undefined in the main thread', () => {
  assert.equal(workerInfo(), undefined);
});
