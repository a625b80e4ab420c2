import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, forEachBackend } from '../helpers.js';

forEachBackend(() => {
  const x = () => mb.arange(24).float().reshape(2, 3, 4);

  it('reshape/view/squeeze/unsqueeze/transpose/permute/expand/slice share storage', () => {
    const t = x();
    for (const v of [
      t.view(6, 4),
      t.reshape(-1),
      t.unsqueeze(0),
      t.transpose(0, 2),
      t.permute(2, 0, 1),
      t.slice(2, 1, 3),
      t.unsqueeze(1).expand(2, 5, 3, 4),
    ]) {
      assert.equal(v.data, t.data);
    }
    assert.deepEqual(t.unsqueeze(0).shape, [1, 2, 3, 4]);
    assert.deepEqual(t.unsqueeze(-1).shape, [2, 3, 4, 1]);
    assert.deepEqual(t.unsqueeze(0).squeeze(0).shape, [2, 3, 4]);
    assert.deepEqual(t.squeeze(1).shape, [2, 3, 4], 'squeeze of a dim that is not 1 is a no-op');
    assert.deepEqual(mb.zeros([1, 3, 1]).squeeze().shape, [3]);
  });

  it("the seed's batch-dimension idioms: newaxis, squeeze(0), concatenate", () => {
    const img = mb.randn([28, 28]);
    assert.deepEqual(img.unsqueeze(0).shape, [1, 28, 28]);
    assert.deepEqual(mb.randn([1, 10]).squeeze(0).shape, [10]);
    assert.deepEqual(mb.cat([mb.randn([32, 784]), mb.randn([32, 784])], 0).shape, [64, 784]);
  });

  it('transposed and sliced views read the right values; contiguous copies only when needed', () => {
    const t = mb.arange(6).reshape(2, 3);
    assert.deepEqual(t.transpose(0, 1).toList(), [
      [0, 3],
      [1, 4],
      [2, 5],
    ]);
    assert.deepEqual(t.slice(1, -2).toList(), [
      [1, 2],
      [4, 5],
    ]);
    assert.deepEqual(t.slice(1, 0, 3, 2).toList(), [
      [0, 2],
      [3, 5],
    ]);
    assert.deepEqual(t.slice(0, 5, 9).shape, [0, 3]);
    assert.equal(t.contiguous(), t);
    const tt = t.transpose(0, 1).contiguous();
    assert.notEqual(tt.data, t.data);
    assert.deepEqual(Array.from(tt.data), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(t.transpose(0, 1).reshape(6).toList(), [0, 3, 1, 4, 2, 5]);
    assert.throws(() => t.transpose(0, 1).view(6), /view: input \[3,2\] is not contiguous; use reshape/);
    assert.deepEqual(t.select(1, -1).toList(), [2, 5]);
    assert.deepEqual(x().flatten(1).shape, [2, 12]);
  });

  it('expand broadcasts with stride 0 and rejects incompatible sizes', () => {
    const e = mb.tensor([[1], [2]]).expand(2, 3);
    assert.deepEqual(e.strides, [1, 0]);
    assert.deepEqual(e.toList(), [
      [1, 1, 1],
      [2, 2, 2],
    ]);
    assert.deepEqual(mb.tensor([1, 2]).expand(3, -1).shape, [3, 2]);
    assert.throws(
      () => mb.tensor([1, 2]).expand(3, 3),
      /expand: cannot expand \[2\] to \[3,3\] \(dim 1: 2 to 3\)/,
    );
  });

  it('cat and stack along any dim, with mixed layouts', () => {
    const a = mb.arange(6).reshape(2, 3);
    const b = mb.arange(6, 12).reshape(3, 2).transpose(0, 1);
    assert.deepEqual(mb.cat([a, b], 1).toList(), [
      [0, 1, 2, 6, 8, 10],
      [3, 4, 5, 7, 9, 11],
    ]);
    assert.deepEqual(mb.cat([a, b], -2).shape, [4, 3]);
    assert.deepEqual(mb.stack([a, b], 2).shape, [2, 3, 2]);
    assert.deepEqual(mb.stack([a, b], 2).select(2, 1).toList(), b.toList());
    assert.throws(
      () => mb.cat([a, mb.zeros([2, 2])], 0),
      /cat: sizes of tensors must match except in dimension 0: tensor 0 is \[2,3\], tensor 1 is \[2,2\]/,
    );
    assert.throws(
      () => mb.stack([a, mb.zeros([3, 2])]),
      /stack: stack expects each tensor to be equal size, but got \[2,3\] at entry 0 and \[3,2\] at entry 1/,
    );
  });

  it('indexSelect gathers rows (the DataLoader batch) and columns; negative indices count from the end', () => {
    const X = mb.arange(12).reshape(4, 3);
    assert.deepEqual(mb.indexSelect(X, 0, [3, 1, 1]).toList(), [
      [9, 10, 11],
      [3, 4, 5],
      [3, 4, 5],
    ]);
    assert.deepEqual(mb.indexSelect(X, 1, new Int32Array([2, -3])).toList(), [
      [2, 0],
      [5, 3],
      [8, 6],
      [11, 9],
    ]);
    assert.deepEqual(mb.indexSelect(X, 0, mb.tensor(new Int32Array([0]))).shape, [1, 3]);
    assert.throws(
      () => mb.indexSelect(X, 0, [4]),
      /indexSelect: index 4 is out of bounds for dimension with size 4/,
    );
    const w = mb.ones([3, 2], { requiresGrad: true });
    mb.indexSelect(w, 0, [0, 0, 2]).sum().backward();
    assertClose(w.grad!, [2, 2, 0, 0, 1, 1]);
  });

  it('dims out of range are rejected with PyTorch wording', () => {
    assert.throws(
      () => x().sum(3),
      /sum: dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)/,
    );
    assert.throws(
      () => x().permute(0, 1),
      /permute: number of dims don't match: permutation has 2, tensor has 3 \(\[2,3,4\]\)/,
    );
    assert.throws(() => x().reshape(5, -1), /reshape: shape \[5,-1\] is invalid for input of size 24/);
  });
});
