import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ShapeError, ValueError } from '../../src/errors.js';
import * as mb from '../../src/index.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft, gradcheck } from '../helpers.js';

type Case = Record<'x' | 'y' | 'g' | 'dx', FixtureTensor> & {
  op: 'avg_pool2d' | 'adaptive_avg_pool2d';
  options?: {
    kernel_size: number | [number, number];
    stride?: number | [number, number];
    padding?: number | [number, number];
    ceil_mode?: boolean;
    count_include_pad?: boolean;
  };
  output_size?: number | [number | null, number | null];
};

forEachBackend(() => {
  describe('average pooling against torch 1.13 (pooling.json)', () => {
    for (const c of fixture<{ cases: Case[] }>('pooling.json').cases) {
      const what =
        c.op === 'avg_pool2d' ? JSON.stringify(c.options) : `output_size ${JSON.stringify(c.output_size)}`;
      it(`${c.op} ${what} on ${c.x.shape}: values and gradient`, () => {
        const x = ft(c.x, true);
        let y: mb.Tensor;
        if (c.op === 'avg_pool2d') {
          const o = c.options!;
          const opts = { ceilMode: o.ceil_mode ?? false, countIncludePad: o.count_include_pad ?? true };
          y = new mb.AvgPool2d(o.kernel_size, o.stride ?? o.kernel_size, o.padding ?? 0, opts).forward(x);
          // The functional form gives the same tensor.
          assert.deepEqual(
            mb.functional.avgPool2d(x, o.kernel_size, o.stride, o.padding, opts).toTypedArray(),
            y.toTypedArray(),
          );
        } else {
          y = new mb.AdaptiveAvgPool2d(c.output_size!).forward(x);
        }
        assertClose(y, c.y, { label: 'y' });
        y.backward(ft(c.g));
        assertClose(x.grad!, c.dx, { label: 'dx' });
      });
    }
  });

  it('adaptiveAvgPool2d(x, 1) is the mean over H and W; avgPool2d matches finite differences', () => {
    const x = mb.randn([2, 3, 5, 7], { generator: new mb.Generator(4) });
    assertClose(mb.functional.adaptiveAvgPool2d(x, 1), x.mean([2, 3], true), { label: 'global' });
    gradcheck(
      (t) => mb.functional.avgPool2d(t!, [3, 2], [2, 1], [1, 1], { ceilMode: true, countIncludePad: false }),
      [mb.randn([1, 2, 6, 5], { generator: new mb.Generator(5) })],
      { label: 'avgPool2d' },
    );
  });

  it('a NaN or Inf pixel reaches only the windows that hold it (as PyTorch), and empty batches pool', () => {
    const x = mb.ones([1, 1, 4, 4]);
    const d = x.data as Float32Array;
    d[0] = Number.NaN;
    d[7] = Number.POSITIVE_INFINITY; // row 1, column 3: the top-right 2×2 window
    assert.deepEqual([...mb.functional.avgPool2d(x, 2).toTypedArray()], [Number.NaN, Infinity, 1, 1]);
    // torch.nn.functional.adaptive_avg_pool2d([[1, inf, 2], [3, 0, 4], [5, 6, 7]], 2): inf, inf, 3.5, 4.25
    const a = mb.tensor(Float32Array.from([1, Infinity, 2, 3, 0, 4, 5, 6, 7]), { shape: [1, 3, 3] });
    assert.deepEqual(
      [...mb.functional.adaptiveAvgPool2d(a, 2).toTypedArray()],
      [Infinity, Infinity, 3.5, 4.25],
    );
    assert.deepEqual(mb.functional.adaptiveAvgPool2d(mb.zeros([1, 0, 4, 4]), 2).shape, [1, 0, 2, 2]);
    assert.deepEqual(mb.functional.avgPool2d(mb.zeros([0, 3, 4, 4]), 2).shape, [0, 3, 2, 2]);
  });

  it('pooling modules print as PyTorch and refuse bad arguments by name', () => {
    assert.equal(String(new mb.AvgPool2d(3, 2, 1)), 'AvgPool2d(kernel_size=3, stride=2, padding=1)');
    assert.equal(String(new mb.AdaptiveAvgPool2d([5, null])), 'AdaptiveAvgPool2d(output_size=(5, None))');
    const bad: [() => unknown, RegExp][] = [
      [
        () => new mb.AvgPool2d(2, 2, 2),
        /AvgPool2d: pad should be at most half of kernel size, but got pad=2 and kernel_size=2/,
      ],
      [() => new mb.AvgPool2d(0), /AvgPool2d: kernel_size must be a positive integer, got 0/],
      [() => new mb.AvgPool2d(2, [1, 0]), /AvgPool2d: stride must be a positive integer, got 0/],
      // biome-ignore lint/suspicious/noExplicitAny: PyTorch's spelling, as a user would write it
      [() => new mb.AvgPool2d(2, 2, 0, { count_include_pad: false } as any), /AvgPool2d: .*countIncludePad/],
      [() => new mb.AdaptiveAvgPool2d(0), /AdaptiveAvgPool2d: output_size must be a positive integer, got 0/],
      [() => mb.functional.avgPool2d(mb.zeros([2, 8]), 2), /avgPool2d: expected a 3-D \(C, H, W\) or 4-D/],
      [
        () => mb.functional.avgPool2d(mb.zeros([1, 1, 2, 2]), 3),
        /avgPool2d: kernel 3x3 is larger than the padded input/,
      ],
      [() => mb.functional.adaptiveAvgPool2d(mb.zeros([1, 2, 0, 2]), 1), /adaptiveAvgPool2d: expected a 3-D/],
      [
        () => mb.functional.avgPool2d(mb.zeros([1, 1, 4, 4], { dtype: 'int32' }), 2),
        /avgPool2d: expected a float32 input, got int32/,
      ],
    ];
    for (const [fn, re] of bad) {
      assert.throws(
        fn,
        (e: unknown) => (e instanceof ValueError || e instanceof ShapeError) && re.test((e as Error).message),
        String(re),
      );
    }
  });
});
