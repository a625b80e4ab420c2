import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ShapeError, ValueError } from '../../src/errors.js';
import * as mb from '../../src/index.js';
import { assertClose, type FixtureTensor, fixture, forEachBackend, ft, gradcheck } from '../helpers.js';

type Pair = number | [number, number];
type Case = Record<'x' | 'y' | 'g' | 'dx', FixtureTensor> &
  Partial<Record<'weight' | 'bias' | 'dweight' | 'dbias', FixtureTensor>> & {
    op: 'conv2d' | 'max_pool2d';
    options: {
      kernel_size?: Pair;
      stride?: Pair;
      padding?: Pair | 'same' | 'valid';
      dilation?: Pair;
      groups?: number;
      ceil_mode?: boolean;
    };
  };

forEachBackend(() => {
  describe('conv2d and maxPool2d options against torch 1.13 (conv2d_more.json)', () => {
    for (const c of fixture<{ cases: Case[] }>('conv2d_more.json').cases) {
      const o = c.options;
      if (c.op === 'max_pool2d') {
        it(`max_pool2d ${JSON.stringify(o)} on ${c.x.shape}: values and gradient`, () => {
          const x = ft(c.x, true);
          const k = o.kernel_size!;
          const y = new mb.MaxPool2d(k, o.stride ?? k, (o.padding as Pair) ?? 0, {
            dilation: o.dilation ?? 1,
            ceilMode: o.ceil_mode ?? false,
          }).forward(x);
          assert.deepEqual(
            mb.functional
              .maxPool2d(x, k, o.stride, o.padding as Pair, o.dilation, o.ceil_mode)
              .toTypedArray(),
            y.toTypedArray(),
          );
          assertClose(y, c.y, { label: 'y' });
          y.backward(ft(c.g));
          assertClose(x.grad!, c.dx, { label: 'dx' });
        });
        continue;
      }
      it(`conv2d ${JSON.stringify(o)} on ${c.x.shape} * ${c.weight!.shape}: values and gradients`, () => {
        const x = ft(c.x, true);
        const w = ft(c.weight!, true);
        const b = c.bias ? ft(c.bias, true) : null;
        const y = mb.functional.conv2d(x, w, b, o.stride, o.padding, o.dilation, o.groups);
        assertClose(y, c.y, { label: 'y', atol: 1e-5 });
        y.backward(ft(c.g));
        assertClose(x.grad!, c.dx, { label: 'dx', atol: 1e-5 });
        assertClose(w.grad!, c.dweight!, { label: 'dweight', atol: 1e-5 });
        if (b) assertClose(b.grad!, c.dbias!, { label: 'dbias', atol: 1e-5 });
        // The module with the same weights gives the same tensor.
        const [Cout, Cg, kh, kw] = c.weight!.shape as [number, number, number, number];
        const conv = new mb.Conv2d(Cg * (o.groups ?? 1), Cout, [kh, kw], {
          stride: o.stride,
          padding: o.padding,
          dilation: o.dilation,
          groups: o.groups,
          bias: b !== null,
        });
        conv.loadStateDict({ weight: w.detach(), ...(b ? { bias: b.detach() } : {}) });
        assert.deepEqual(conv.forward(x).toTypedArray(), y.toTypedArray());
      });
    }
  });

  it('dilated, strided, grouped conv2d matches finite differences', () => {
    const gen = new mb.Generator(6);
    gradcheck(
      (x, w) => mb.functional.conv2d(x!, w!, null, [2, 1], [1, 2], [2, 1], 2),
      [mb.randn([1, 4, 6, 5], { generator: gen }), mb.randn([2, 2, 2, 3], { generator: gen })],
      { label: 'conv2d' },
    );
  });
});

describe('conv2d and maxPool2d arguments', () => {
  it("print as PyTorch's modules", () => {
    assert.equal(
      String(
        new mb.Conv2d(4, 8, [3, 5], { stride: [2, 1], padding: [1, 2], dilation: 2, groups: 2, bias: false }),
      ),
      'Conv2d(4, 8, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 2), groups=2, bias=False)',
    );
    assert.equal(
      String(new mb.Conv2d(4, 8, 3, { padding: 'same' })),
      'Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), padding=same)',
    );
    assert.equal(String(new mb.Conv2d(1, 8, 3)), 'Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1))');
    assert.equal(
      String(new mb.MaxPool2d([2, 3], undefined, 0, { dilation: 2, ceilMode: true })),
      'MaxPool2d(kernel_size=(2, 3), stride=(2, 3), padding=0, dilation=2, ceil_mode=True)',
    );
    assert.equal(
      String(new mb.MaxPool2d(2)),
      'MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)',
    );
    // Grouped weights hold Cin/groups input channels and take fan_in from them.
    assert.deepEqual(new mb.Conv2d(6, 4, 3, { groups: 2 }).weight.shape, [4, 3, 3, 3]);
  });

  it('refuses bad arguments by name, as PyTorch', () => {
    const bad: [() => unknown, typeof ValueError | typeof ShapeError, RegExp][] = [
      [
        () => mb.functional.conv2d(mb.zeros([1, 4, 5, 5]), mb.zeros([6, 3, 3, 3]), null, 1, 0, 1, 2),
        ShapeError,
        /conv2d: expected input \(N, 6, H, W\) or \(6, H, W\) for weight \[6,3,3,3\] and groups=2, got \[1,4,5,5\]/,
      ],
      [
        () => mb.functional.conv2d(mb.zeros([1, 4, 5, 5]), mb.zeros([5, 2, 3, 3]), null, 1, 0, 1, 2),
        ValueError,
        /conv2d: out_channels \(5\) must be divisible by groups \(2\)/,
      ],
      [
        () => mb.functional.conv2d(mb.zeros([1, 1, 5, 5]), mb.zeros([1, 1, 3, 3]), null, 2, 'same'),
        ValueError,
        /conv2d: padding='same' is not supported for strided convolutions/,
      ],
      [
        () => mb.functional.conv2d(mb.zeros([1, 1, 5, 5]), mb.zeros([1, 1, 3, 3]), null, 1, 0, [0, 1]),
        ValueError,
        /conv2d: dilation must be a positive integer or a pair of them, got \[0,1\]/,
      ],
      [
        () => mb.functional.conv2d(mb.zeros([1, 1, 5, 5]), mb.zeros([1, 1, 3, 3]), null, 1, 0, 3),
        ShapeError,
        /conv2d: kernel 7x7 \(dilated\) is larger than the padded input 5x5/,
      ],
      [
        () => new mb.Conv2d(4, 6, 3, { groups: 4 }),
        ValueError,
        /Conv2d: in_channels \(4\) and out_channels \(6\) must be divisible by groups \(4\)/,
      ],
      [
        () => new mb.Conv2d(1, 1, [3, 0]),
        ValueError,
        /Conv2d: kernel_size must be a positive integer or a pair of them, got \[3,0\]/,
      ],
      [() => new mb.Conv2d(1, 1, 3, { stride: 2, padding: 'same' }), ValueError, /strided convolutions/],
      [
        () => new mb.MaxPool2d(3, 1, [2, 1]),
        ValueError,
        /MaxPool2d: pad should be at most half of kernel size, but got pad=2 and kernel_size=3/,
      ],
      [() => new mb.MaxPool2d(2, 2, 0, { ceil: true } as never), ValueError, /MaxPool2d.*ceil/],
      [
        () => new mb.MaxPool2d(2, 2, 0, { ceilMode: 1 as unknown as boolean }),
        ValueError,
        /MaxPool2d: ceil_mode must be a boolean, got number/,
      ],
      [
        () => mb.functional.maxPool2d(mb.zeros([1, 1, 4, 4]), 2, 2, 0, 1, 'yes' as unknown as boolean),
        ValueError,
        /maxPool2d: ceil_mode must be a boolean, got string/,
      ],
    ];
    for (const [f, type, msg] of bad)
      assert.throws(f, (e: unknown) => e instanceof type && msg.test((e as Error).message));
  });

  it("padding='same' keeps H and W for any kernel and dilation; 'valid' is no padding", () => {
    const x = mb.randn([1, 2, 7, 6], { generator: new mb.Generator(8) });
    for (const [k, d] of [
      [4, 1],
      [3, 2],
      [
        [2, 5],
        [3, 1],
      ],
    ] as [number | [number, number], number | [number, number]][]) {
      const conv = new mb.Conv2d(2, 3, k, { padding: 'same', dilation: d, generator: new mb.Generator(9) });
      assert.deepEqual(conv.forward(x).shape, [1, 3, 7, 6]);
    }
    const w = mb.randn([3, 2, 2, 3], { generator: new mb.Generator(10) });
    assert.deepEqual(
      mb.functional.conv2d(x, w, null, 1, 'valid').toTypedArray(),
      mb.functional.conv2d(x, w, null, 1, 0).toTypedArray(),
    );
  });
});
