import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, forEachBackend } from '../helpers.js';

/**
 * Whether some strides show v's elements, in row-major order, with `shape` (brute force): each dim's stride is
 * the storage step of its first unit move, and every element must sit where those strides put it.
 */
function viewable(v: mb.Tensor, shape: number[]): boolean {
  const pos: number[] = [];
  const walk = (d: number, at: number) => {
    if (d === v.rank) pos.push(at);
    else for (let i = 0; i < v.shape[d]!; i++) walk(d + 1, at + i * v.strides[d]!);
  };
  walk(0, 0);
  const strides = shape.map((_, i) => {
    const flat = shape.slice(i + 1).reduce((a, b) => a * b, 1); // the row-major index of a unit step in dim i
    return shape[i]! > 1 ? pos[flat]! - pos[0]! : 0;
  });
  const ok = (d: number, flat: number, at: number): boolean => {
    if (d === shape.length) return pos[flat] === at;
    for (let i = 0; i < shape[d]!; i++)
      if (!ok(d + 1, flat * shape[d]! + i, at + i * strides[d]!)) return false;
    return true;
  };
  return ok(0, 0, pos[0]!);
}

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
    assert.throws(
      () => t.transpose(0, 1).view(6),
      /view: shape \[6\] is not compatible with input \[3,2\] of strides \[1,3\] .*; use reshape/,
    );
    assert.deepEqual(t.select(1, -1).toList(), [2, 5]);
    assert.deepEqual(x().flatten(1).shape, [2, 12]);
  });

  it('view and reshape keep a view wherever PyTorch does (computeStride), values right either way', () => {
    // PyTorch 1.13: x[:, :, 0:2].view(6, 2) has strides (4, 1); x.permute(2, 0, 1).view(4, 6) works, its
    // view(4, 2, 3) has strides (1, 12, 4); x.mT.reshape(2, 4, 3) is a view with strides (12, 1, 4).
    const t = x();
    const sliced = t.slice(2, 0, 2).view(6, 2);
    assert.equal(sliced.data, t.data);
    assert.deepEqual(sliced.strides, [4, 1]);
    assert.deepEqual(sliced.toList(), [
      [0, 1],
      [4, 5],
      [8, 9],
      [12, 13],
      [16, 17],
      [20, 21],
    ]);
    assert.deepEqual(t.permute(2, 0, 1).view(4, 6).strides, [1, 4]);
    assert.deepEqual(t.permute(2, 0, 1).view(4, 2, 3).strides, [1, 12, 4]);
    const mt = t.mT.reshape(2, 4, 3);
    assert.equal(mt.data, t.data);
    assert.deepEqual(mt.strides, [12, 1, 4]);
    // Random layouts (permuted, stepped, expanded) reshaped to random shapes of the same size: a view or a
    // copy, the values are those of the contiguous copy, and a view shares the storage.
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const divisorsOf = (n: number) => Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
    let views = 0;
    for (let c = 0; c < 300; c++) {
      const rank = 1 + rnd(4);
      const dims = Array.from({ length: rank }, () => 1 + rnd(4));
      let v = mb.arange(dims.reduce((a, b) => a * b, 1) * 2).float();
      v = v.slice(0, 0, v.size, 2).reshape(dims); // every other element: a stride-2 base
      const perm = dims.map((_, i) => i).sort(() => rnd(3) - 1);
      v = v.permute(perm);
      const d = rnd(rank);
      if (v.shape[d]! > 1 && rnd(2)) v = v.slice(d, rnd(2), undefined, 1 + rnd(2));
      if (rnd(4) === 0)
        v = v.unsqueeze(rnd(rank + 1)).expand(...v.unsqueeze(0).shape.map((s, i) => (i ? s : 1)));
      // A target shape: the size split into random factors.
      const target: number[] = [];
      let left = v.size;
      while (left > 1 && target.length < 4) {
        const ds = divisorsOf(left);
        const f = ds[rnd(ds.length)]!;
        target.push(f);
        left /= f;
      }
      if (left > 1 || target.length === 0) target.push(left);
      if (rnd(3) === 0) target.splice(rnd(target.length + 1), 0, 1);
      const want = mb.contiguous(v, true).reshape(target).toList();
      const r = v.reshape(target);
      assert.deepEqual(r.toList(), want, `reshape ${v.shape}/${v.strides} -> ${target}`);
      assert.equal(
        viewable(v, target),
        (() => {
          try {
            v.view(target);
            return true;
          } catch {
            return false;
          }
        })(),
        `view ${v.shape}/${v.strides} -> ${target}: a strided view exists iff view succeeds`,
      );
      let viewed: mb.Tensor | null = null;
      try {
        viewed = v.view(target);
      } catch (e) {
        assert.match((e as Error).message, /^view: shape .* is not compatible with input/);
      }
      if (viewed) {
        views++;
        assert.equal(viewed.data, v.data);
        assert.deepEqual(viewed.toList(), want);
      }
      assert.equal(r.data === v.data, viewed !== null, 'reshape copies exactly when view cannot');
    }
    assert.ok(views > 100, `only ${views} of 300 layouts could be viewed`);
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

  it('indexSelect copies rows of every length and dtype exactly (short rows by a loop, longer ones as blocks)', () => {
    assert.deepEqual(
      mb.indexSelect(mb.tensor(Int32Array.from([7, 3, 9, 1])), 0, [2, 0, 2, 3]).toList(),
      [9, 7, 9, 1],
    );
    assert.deepEqual(mb.indexSelect(mb.tensor([true, false, true]), 0, [1, 2]).toList(), [false, true]);
    for (const row of [1, 16, 17]) {
      const X = mb
        .arange(5 * row)
        .reshape(5, row)
        .slice(0, 1, 5); // a view at an offset: rows 1-4
      const got = mb.indexSelect(X, 0, [3, 0, 3]).reshape(-1).toList();
      const want = [4, 1, 4].flatMap((r) => Array.from({ length: row }, (_, j) => r * row + j));
      assert.deepEqual(got, want);
    }
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
