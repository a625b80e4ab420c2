import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as mb from '../../src/index.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft, gradcheck } from '../helpers.js';

type Case = Record<'x' | 'weight' | 'bias' | 'y' | 'g' | 'dx' | 'dweight' | 'dbias', FixtureTensor> & {
  op?: string;
  stride: number;
  padding: number;
  kernel: number;
};

forEachBackend(() => {
  for (const c of fixture<{ cases: Case[] }>('conv2d.json').cases) {
    if (c.op === 'max_pool2d') {
      it(`maxPool2d kernel ${c.kernel} on ${c.x.shape} matches PyTorch`, () => {
        const x = ft(c.x, true);
        const y = new mb.MaxPool2d(c.kernel).forward(x);
        assertClose(y, c.y, { label: 'y' });
        y.backward(ft(c.g));
        assertClose(x.grad!, c.dx, { label: 'dx' });
      });
      continue;
    }
    it(`conv2d ${c.x.shape} * ${c.weight.shape} stride ${c.stride} padding ${c.padding} matches PyTorch`, () => {
      const x = ft(c.x, true);
      const w = ft(c.weight, true);
      const b = ft(c.bias, true);
      const y = mb.functional.conv2d(x, w, b, c.stride, c.padding);
      assertClose(y, c.y, { label: 'y', atol: 1e-5 });
      y.backward(ft(c.g));
      assertClose(x.grad!, c.dx, { label: 'dx', atol: 1e-5 });
      assertClose(w.grad!, c.dweight, { label: 'dweight', atol: 1e-5 });
      assertClose(b.grad!, c.dbias, { label: 'dbias', atol: 1e-5 });
    });
  }

  it('unfold (im2col) backward matches finite differences, with stride and padding', () => {
    gradcheck(
      (x) => mb.functional.unfold(x!, [2, 3], 2, 1),
      [mb.randn([1, 2, 5, 4], { generator: new mb.Generator(2) })],
      { label: 'unfold' },
    );
  });

  it('conv2d and maxPool2d reject bad shapes', () => {
    assert.throws(
      () => mb.functional.conv2d(mb.zeros([1, 2, 5, 5]), mb.zeros([4, 3, 3, 3])),
      /conv2d: expected input \(N, 3, H, W\) or \(3, H, W\) for weight \[4,3,3,3\], got \[1,2,5,5\]/,
    );
    assert.throws(
      () => mb.functional.maxPool2d(mb.zeros([1, 1, 1, 1]), 2),
      /maxPool2d: kernel 2x2 is larger than the padded input 1x1/,
    );
  });
  it('conv2d and maxPool2d take an unbatched (C, H, W) image as a batch of one, as PyTorch 1.13', () => {
    const x = mb.randn([2, 5, 6], { generator: new mb.Generator(3) });
    const conv = new mb.Conv2d(2, 3, 3, { padding: 1 });
    const batched = conv.forward(x.unsqueeze(0));
    const single = conv.forward(x);
    assert.deepEqual(single.shape, [3, 5, 6]);
    assert.deepEqual(single.toTypedArray(), batched.squeeze(0).contiguous().toTypedArray());
    const pooled = new mb.MaxPool2d(2).forward(x);
    assert.deepEqual(pooled.shape, [2, 2, 3]);
    assert.deepEqual(pooled.toTypedArray(), new mb.MaxPool2d(2).forward(x.unsqueeze(0)).toTypedArray());
  });
});
