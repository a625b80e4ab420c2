import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, forEachBackend } from '../helpers.js';

/** A float64 reference matmul over nested arrays. */
function refMatmul(a: number[][], b: number[][], n = b[0]!.length): number[][] {
  return a.map((row) => Array.from({ length: n }, (_, j) => row.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
}

forEachBackend(() => {
  it('binary ops broadcast NumPy-style: (N,D) + (D), (N,1) * (1,D), scalars', () => {
    const x = mb.tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(mb.add(x, mb.tensor([10, 20, 30])).toList(), [
      [11, 22, 33],
      [14, 25, 36],
    ]);
    assert.deepEqual(mb.mul(mb.tensor([[1], [2]]), mb.tensor([[1, 2, 3]])).toList(), [
      [1, 2, 3],
      [2, 4, 6],
    ]);
    assert.deepEqual(mb.sub(10, x).toList(), [
      [9, 8, 7],
      [6, 5, 4],
    ]);
    assert.deepEqual(mb.div(x, 2).toList(), [
      [0.5, 1, 1.5],
      [2, 2.5, 3],
    ]);
    assert.deepEqual(mb.pow(x, 2).toList(), [
      [1, 4, 9],
      [16, 25, 36],
    ]);
    assert.deepEqual(mb.maximum(x, 3.5).toList(), [
      [3.5, 3.5, 3.5],
      [4, 5, 6],
    ]);
    assert.throws(
      () => mb.add(x, mb.ones([2])),
      /add: shapes \[2,3\] and \[2\] cannot be broadcast \(dim 1: 3 vs 2\)/,
    );
  });

  it('int32 arithmetic stays int; division gives float', () => {
    const i = mb.arange(4);
    assert.equal(mb.add(i, 1).dtype, 'int32');
    assert.equal(mb.div(i, 2).dtype, 'float32');
    assert.equal(mb.add(i, 0.5).dtype, 'float32');
    assert.deepEqual(mb.add(i, 0.5).toList(), [0.5, 1.5, 2.5, 3.5]);
  });

  it('non-finite values pass through like IEEE floats, never replaced', () => {
    const x = mb.tensor([0, -1, Number.NaN, Infinity]);
    const l = mb.log(x).toList() as number[];
    assert.equal(l[0], -Infinity);
    assert.ok(Number.isNaN(l[1]!) && Number.isNaN(l[2]!));
    assert.equal(l[3], Infinity);
    assert.deepEqual(mb.div(mb.tensor([1, -1]), 0).toList(), [Infinity, -Infinity]);
    assert.ok(Number.isNaN((mb.maximum(x, 0).toList() as number[])[2]!));
    assert.ok(Number.isNaN(mb.max(x).item()));
    assert.ok(Number.isNaN(mb.relu(mb.tensor([Number.NaN])).item()));
  });

  it('unary ops: exact values and stability at ±1000', () => {
    assertClose(mb.exp(mb.tensor([0, 1])), [1, Math.E]);
    assertClose(mb.sqrt(mb.tensor([4, 2])), [2, Math.SQRT2]);
    assertClose(mb.sigmoid(mb.tensor([-1000, 0, 1000])), [0, 0.5, 1]);
    assertClose(mb.tanh(mb.tensor([-1000, 0.5, 1000])), [-1, Math.tanh(0.5), 1]);
    assertClose(
      mb.erf(mb.tensor([-3, -0.5, 0, 0.3, 1, 2])),
      [-0.9999779095, -0.5204998778, 0, 0.3286267595, 0.8427007929, 0.995322265],
      { rtol: 1e-6 },
    );
    assertClose(mb.abs(mb.tensor([-2, 3])), [2, 3]);
    assertClose(mb.clamp(mb.tensor([-2, 0.5, 3]), -1, 1), [-1, 0.5, 1]);
    assertClose(mb.clamp(mb.tensor([-2, 3]), undefined, 0), [-2, 0]);
    assert.throws(() => mb.clamp(mb.ones([1])), /clamp: at least one of min and max must be given/);
  });

  it('comparisons give bool tensors; where selects with broadcasting', () => {
    const x = mb.tensor([1, 2, 3]);
    const m = mb.gt(x, 1.5);
    assert.equal(m.dtype, 'bool');
    assert.deepEqual(m.toList(), [false, true, true], 'a bool tensor lists booleans, as PyTorch');
    assert.deepEqual(mb.eq(x, mb.tensor([1, 0, 3])).toList(), [true, false, true]);
    assert.deepEqual(mb.le(x, 2).toList(), [true, true, false]);
    assert.deepEqual(mb.where(m, x, -1).toList(), [-1, 2, 3]);
    assert.deepEqual(mb.where(mb.tensor([[1], [0]], { dtype: 'bool' }), x, mb.zeros([3])).toList(), [
      [1, 2, 3],
      [0, 0, 0],
    ]);
    assert.throws(() => mb.where(x, x, x), /where: condition must be a bool tensor, got float32/);
  });

  it('reductions over any dims with keepDim: sum, mean, max, min, var (correction), argmax, logsumexp', () => {
    const x = mb.tensor([
      [1, 5, 3],
      [4, 2, 6],
    ]);
    assert.deepEqual(x.sum().toList(), 21);
    assert.deepEqual(x.sum(0).toList(), [5, 7, 9]);
    assert.deepEqual(x.sum(1, true).toList(), [[9], [12]]);
    assert.deepEqual(x.sum([0, 1], true).shape, [1, 1]);
    assert.deepEqual(x.mean(-1).toList(), [3, 4]);
    assert.deepEqual(x.max(1).toList(), [5, 6]);
    assert.deepEqual(x.min(0).toList(), [1, 2, 3]);
    assertClose(x.var(1), [4, 4]);
    assertClose(x.var(1, { correction: 0 }), [8 / 3, 8 / 3]);
    assertClose(x.var(), [17.5 / 5]);
    assert.deepEqual(x.argmax(1).toList(), [1, 2]);
    assert.deepEqual(x.argmin(0, true).toList(), [[0, 1, 0]]);
    assert.equal(x.argmax().item(), 5);
    assertClose(x.logsumexp(1), [
      Math.log(Math.exp(1) + Math.exp(5) + Math.exp(3)),
      Math.log(Math.exp(4) + Math.exp(2) + Math.exp(6)),
    ]);
    assertClose(mb.tensor([1000, 1000]).logsumexp(0), [1000 + Math.LN2]);
    assert.equal(mb.tensor([-Infinity, -Infinity]).logsumexp(0).item(), -Infinity);
    assert.ok(Number.isNaN(mb.zeros([0]).mean().item()));
    assert.equal(mb.zeros([0, 3]).sum().item(), 0);
    assert.throws(() => mb.zeros([0, 3]).max(0), /max: cannot reduce over dim 0 of size 0 \(shape \[0,3\]\)/);
  });

  it('softmax rows sum to 1 along any dim; log-softmax is finite at ±1000', () => {
    const x = mb.randn([3, 4, 5], { generator: new mb.Generator(3) });
    for (const d of [0, 1, 2])
      assertClose(mb.softmax(x, d).sum(d), mb.ones([...x.shape].filter((_, i) => i !== d)));
    assertClose(mb.logSoftmax(mb.tensor([[-1000, 0, 1000]]), -1), [-2000, -1000, 0]);
  });

  it('matmul: edge shapes (1x1, not multiples of 4/8, K=0, empty batch) match a float64 reference', () => {
    const g = new mb.Generator(9);
    for (const [M, K, N] of [
      [1, 1, 1],
      [3, 5, 7],
      [17, 9, 33],
      [2, 0, 3],
      [0, 4, 2],
      [64, 65, 31],
    ] as const) {
      const a = mb.randn([M, K], { generator: g });
      const b = mb.randn([K, N], { generator: g });
      const y = mb.matmul(a, b);
      assert.deepEqual(y.shape, [M, N]);
      assertClose(y, refMatmul(a.toList() as number[][], b.toList() as number[][], N).flat(), {
        rtol: 1e-5,
        atol: 1e-5,
      });
    }
  });

  it('matmul: transposed operands, vectors, batched broadcast', () => {
    const a = mb.randn([4, 3], { generator: new mb.Generator(1) });
    const b = mb.randn([4, 5], { generator: new mb.Generator(2) });
    assertClose(mb.matmul(a.mT, b), refMatmul(a.mT.toList() as number[][], b.toList() as number[][]).flat(), {
      atol: 1e-5,
    });
    assert.deepEqual(mb.matmul(mb.ones([3]), mb.ones([3, 2])).toList(), [3, 3]);
    assert.deepEqual(mb.matmul(mb.ones([2, 3]), mb.ones([3])).toList(), [3, 3]);
    assert.equal(mb.matmul(mb.ones([3]), mb.ones([3])).item(), 3);
    assert.deepEqual(mb.matmul(mb.ones([5, 1, 2, 3]), mb.ones([4, 3, 6])).shape, [5, 4, 2, 6]);
    assert.deepEqual(mb.matmul(mb.ones([0, 2, 3]), mb.ones([3, 6])).shape, [0, 2, 6]);
    assert.throws(
      () => mb.matmul(mb.ones([32, 784]), mb.ones([512, 10])),
      /^ShapeError: matmul: cannot multiply \[32,784\] by \[512,10\]: inner dimensions 784 and 512 differ$/,
    );
    assert.throws(
      () => mb.matmul(mb.ones([2, 2, 3]), mb.ones([3, 3, 2])),
      /matmul: shapes \[2\] and \[3\] cannot be broadcast/,
    );
    assert.throws(
      () => mb.matmul(mb.arange(3).reshape(1, 3), mb.ones([3, 1])),
      /matmul: expected a float32 tensor, got int32/,
    );
  });

  it('errors are typed and name the op', () => {
    try {
      mb.add(mb.ones([2]), mb.ones([3]));
      assert.fail('no throw');
    } catch (e) {
      assert.ok(e instanceof mb.ShapeError);
      assert.ok(e instanceof mb.MinibatchError);
      assert.equal((e as mb.ShapeError).op, 'add');
    }
    assert.throws(() => mb.setBackend('cuda'), /setBackend: unknown backend 'cuda' \(registered: js/);
  });

  it('copy_ writes in place with broadcasting; item() only for one element', () => {
    const t = mb.zeros([2, 2]);
    t.copy_(mb.tensor([1, 2]));
    assert.deepEqual(t.toList(), [
      [1, 2],
      [1, 2],
    ]);
    t.fill_(3);
    assert.deepEqual(t.toList(), [
      [3, 3],
      [3, 3],
    ]);
    assert.throws(() => t.copy_(mb.ones([3])), /copy_: shapes \[3\] and \[2,2\] cannot be broadcast/);
    assert.throws(() => t.item(), /item: a tensor with 4 elements cannot be converted to a number/);
  });
});
