// The package entry first: importing src/tensor/ops.js before it trips the tensor/autograd import cycle.
import '../../src/index.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type CollateRule,
  defaultCollate,
  defaultCollateRules,
  makeCollate,
  padCollate,
  padSequences,
} from '../../src/data/collate.js';
import * as mb from '../../src/index.js';

const values = (t: unknown) => [...(t as mb.Tensor).toTypedArray()];

describe('defaultCollate', () => {
  it('stacks tensors batch-first', () => {
    const batch = defaultCollate<mb.Tensor>([mb.tensor([1, 2]), mb.tensor([3, 4]), mb.tensor([5, 6])]);
    assert.deepEqual(batch.shape, [3, 2]);
    assert.deepEqual(values(batch), [1, 2, 3, 4, 5, 6]);
  });

  it('turns numbers, booleans and typed arrays into tensors and keeps strings', () => {
    const [labels, weights, flags, rows, names] = defaultCollate([
      [3, 0.5, true, Float32Array.of(1, 2), 'a'],
      [7, 2, false, Float32Array.of(3, 4), 'b'],
    ]);
    assert.equal(labels!.dtype, 'int32', 'integers are int32 (labels)');
    assert.deepEqual(values(labels), [3, 7]);
    assert.equal(weights!.dtype, 'float32', 'any fraction makes float32');
    assert.deepEqual(values(weights), [0.5, 2]);
    assert.equal(flags!.dtype, 'bool');
    assert.deepEqual(values(flags), [1, 0]);
    assert.deepEqual(rows!.shape, [2, 2]);
    assert.deepEqual(values(rows), [1, 2, 3, 4]);
    assert.deepEqual(names, ['a', 'b']);
    assert.equal(defaultCollate<mb.Tensor>([Int32Array.of(1), Int32Array.of(2)]).dtype, 'int32');
  });

  it('makes Uint8Array rows (image bytes) int32 whatever their values; bool only from booleans', () => {
    const pixels = defaultCollate<mb.Tensor>([Uint8Array.of(0, 128, 255), Uint8Array.of(7, 0, 1)]);
    assert.equal(pixels.dtype, 'int32');
    assert.deepEqual(values(pixels), [0, 128, 255, 7, 0, 1]);
    // By type, not by value: bytes that happen to be 0 and 1 are still int32.
    assert.equal(defaultCollate<mb.Tensor>([Uint8Array.of(0, 1), Uint8Array.of(1, 1)]).dtype, 'int32');
    assert.equal(defaultCollate<mb.Tensor>([true, false]).dtype, 'bool');
    const masks = defaultCollate<mb.Tensor>([mb.tensor([true, false]), mb.tensor([false, true])]);
    assert.equal(masks.dtype, 'bool');
    assert.deepEqual(values(masks), [1, 0, 0, 1]);
  });

  it('picks the dtype of numbers per batch, which a rule for Number fixes (the makeCollate example)', () => {
    const samples = [
      [mb.tensor([0]), 1, 5],
      [mb.tensor([1]), 2, 6],
      [mb.tensor([2]), 0.5, 7],
      [mb.tensor([3]), 3, 8],
    ];
    const dtypes = (collate: (s: unknown[]) => mb.Tensor[]) =>
      [samples.slice(0, 2), samples.slice(2)].map((batch) => collate(batch).map((t) => t.dtype));
    assert.deepEqual(dtypes(defaultCollate), [
      ['float32', 'int32', 'int32'],
      ['float32', 'float32', 'int32'],
    ]);
    const numbers = defaultCollateRules.get(Number)!;
    const floatTargets = makeCollate(
      new Map([
        ...defaultCollateRules,
        [
          Number,
          (vs, path, c) =>
            path === '[1]' ? mb.tensor(Float32Array.from(vs as number[])) : numbers(vs, path, c),
        ],
      ]),
    );
    assert.deepEqual(dtypes(floatTargets), [
      ['float32', 'float32', 'int32'],
      ['float32', 'float32', 'int32'],
    ]);
  });

  it('recurses into nested objects and arrays', () => {
    const batch = defaultCollate<{ x: { a: mb.Tensor; b: mb.Tensor[] }; y: mb.Tensor }>([
      { x: { a: mb.tensor([1]), b: [1, mb.tensor([[0, 1]])] }, y: 0 },
      { x: { a: mb.tensor([2]), b: [2, mb.tensor([[2, 3]])] }, y: 1 },
    ]);
    assert.deepEqual(batch.x.a.shape, [2, 1]);
    assert.deepEqual(values(batch.x.b[0]), [1, 2]);
    assert.deepEqual(batch.x.b[1]!.shape, [2, 1, 2]);
    assert.deepEqual(values(batch.y), [0, 1]);
  });

  it('names the field and the shapes of ragged samples', () => {
    const sample = (n: number) => ({ image: mb.zeros([3, 4]), tokens: [mb.zeros([n, 8]), 0] });
    assert.throws(() => defaultCollate([sample(5), sample(5), sample(7)]), {
      name: 'ShapeError',
      message:
        'collate: samples differ in shape at field tokens[0] (got [7,8] in sample 2, expected [5,8] as in sample 0); sequences of different lengths need padding (padCollate)',
    });
    assert.throws(() => defaultCollate([[Float32Array.of(1, 2)], [Float32Array.of(1)]]), {
      name: 'ShapeError',
      message:
        'collate: samples differ in shape at field [0] (got length 1 in sample 1, expected length 2 as in sample 0)',
    });
    assert.throws(() => defaultCollate([[1, 2], [1]]), {
      message:
        'collate: samples differ in shape at the samples (got 1 elements in sample 1, expected 2 elements as in sample 0)',
    });
  });

  it('names the field of mismatched types and keys, and unknown classes', () => {
    assert.throws(() => defaultCollate([{ y: 1 }, { y: mb.tensor([1]) }]), {
      name: 'ValueError',
      message:
        'collate: samples differ in type at field y (got Tensor in sample 1, expected number as in sample 0)',
    });
    assert.throws(() => defaultCollate([{ a: 1 }, { b: 1 }]), {
      message:
        'collate: samples differ in keys at the samples (got b in sample 1, expected a as in sample 0)',
    });
    assert.throws(() => defaultCollate([new Date(0)]), {
      message: 'collate: no collate rule for Date at the samples (add one with makeCollate)',
    });
    assert.throws(() => defaultCollate([[Float64Array.of(1)]]), {
      message:
        'collate: cannot collate a Float64Array at field [0] (expected Float32Array, Int32Array or Uint8Array, as tensor() takes)',
    });
    assert.throws(() => defaultCollate([{ a: null }]), {
      message: 'collate: field a is null in sample 0 (expected a value)',
    });
  });

  it('extends by type: a rule for a class, found along the prototype chain', () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    class Point3 extends Point {}
    const points: CollateRule = (ps) => mb.tensor((ps as Point[]).map((p) => [p.x, p.y]));
    const collate = makeCollate(new Map([...defaultCollateRules, [Point, points]]));
    const batch = collate<{ at: mb.Tensor; label: mb.Tensor }>([
      { at: new Point(1, 2), label: 0 },
      { at: new Point3(3, 4), label: 1 },
    ]);
    assert.deepEqual(batch.at.shape, [2, 2]);
    assert.deepEqual(values(batch.at), [1, 2, 3, 4]);
    assert.deepEqual(values(batch.label), [0, 1]);
  });
});

describe('padding', () => {
  const seq = (T: number, v: number) => mb.full([T, 2], v);

  it('padSequences pads (T, D) sequences to the longest and returns a mask', () => {
    const [x, mask] = padSequences([seq(2, 1), seq(3, 2), seq(1, 3)], -1);
    assert.deepEqual(x.shape, [3, 3, 2]);
    assert.deepEqual(values(x), [1, 1, 1, 1, -1, -1, 2, 2, 2, 2, 2, 2, 3, 3, -1, -1, -1, -1]);
    assert.equal(mask.dtype, 'bool');
    assert.deepEqual(mask.shape, [3, 3]);
    assert.deepEqual(values(mask), [1, 1, 0, 1, 1, 1, 1, 0, 0]);
  });

  it('padSequences reads strided views and rejects mismatched feature dims', () => {
    const t = mb.transpose(
      mb.tensor([
        [1, 2],
        [3, 4],
      ]),
      0,
      1,
    ); // [[1,3],[2,4]]
    assert.deepEqual(values(padSequences([t])[0]), [1, 3, 2, 4]);
    assert.throws(() => padSequences([mb.zeros([2, 2]), mb.zeros([2, 3])]), {
      name: 'ShapeError',
      message:
        'padSequences: sequences must agree in every dimension but the first, and in dtype (got float32 [2,3] at 1, expected float32 [T,2] as at 0)',
    });
  });

  it('padCollate gives [x (N, T, D), mask (N, T), ...rest collated]', () => {
    const [x, mask, y] = padCollate([
      [seq(1, 5), 5],
      [seq(2, 6), 6],
    ]);
    assert.deepEqual(x!.shape, [2, 2, 2]);
    assert.deepEqual(values(mask), [1, 0, 1, 1]);
    assert.deepEqual(values(y), [5, 6]);
    assert.equal(padCollate([seq(3, 0)]).length, 2, 'a bare sequence gives [x, mask]');
  });
});
